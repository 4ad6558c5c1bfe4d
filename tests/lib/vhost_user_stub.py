"""A vhost-user backend that only answers QEMU's set-up questions.

Enough of the vhost-user protocol for QEMU to initialize a vhost-user-blk
device (features, protocol features, config space) and, the point of it,
to learn how many memory slots the backend supports
(VHOST_USER_GET_MAX_MEM_SLOTS). It never processes virtqueues. It accepts
any number of connections (QEMU reconnects when device set-up fails); with
drop_first=N it closes each of the first N connections when QEMU's first
request arrives, as a backend that restarts during the handshake does.
"""

import os
import socket
import struct
import threading

GET_FEATURES = 1
GET_VRING_BASE = 11
GET_PROTOCOL_FEATURES = 15
GET_QUEUE_NUM = 17
GET_CONFIG = 24
GET_MAX_MEM_SLOTS = 36

F_PROTOCOL_FEATURES = 1 << 30
F_VERSION_1 = 1 << 32
PROTOCOL_F_MQ = 1 << 0
PROTOCOL_F_CONFIG = 1 << 9
PROTOCOL_F_CONFIGURE_MEM_SLOTS = 1 << 15

FLAG_VERSION = 0x1
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8
HEADER = struct.Struct("<III")


class VhostUserStub:
    def __init__(self, path, memslots, drop_first=0):
        self.path = path
        self.memslots = memslots
        self.drop_first = drop_first
        self.connections = 0
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            drop = self.connections <= self.drop_first
            threading.Thread(target=self._session, args=(conn, drop),
                             daemon=True).start()

    @staticmethod
    def _recv_exact(conn, size):
        data, fds = b"", []
        while len(data) < size:
            chunk, anc, _, _ = conn.recvmsg(size - len(data),
                                            socket.CMSG_SPACE(64 * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += struct.unpack(f"{len(payload) // 4}i", payload)
            if not chunk:
                raise EOFError
            data += chunk
        for fd in fds:
            os.close(fd)
        return data

    def _reply(self, conn, request, payload):
        conn.sendall(HEADER.pack(request, FLAG_VERSION | FLAG_REPLY,
                                 len(payload)) + payload)

    def _session(self, conn, drop=False):
        u64 = struct.Struct("<Q")
        answers = {
            GET_FEATURES: F_PROTOCOL_FEATURES | F_VERSION_1,
            GET_PROTOCOL_FEATURES: (PROTOCOL_F_MQ | PROTOCOL_F_CONFIG |
                                    PROTOCOL_F_CONFIGURE_MEM_SLOTS),
            GET_QUEUE_NUM: 1,
            GET_MAX_MEM_SLOTS: self.memslots,
        }
        with conn:
            try:
                while True:
                    request, flags, size = HEADER.unpack(
                        self._recv_exact(conn, HEADER.size))
                    payload = self._recv_exact(conn, size) if size else b""
                    if drop:
                        return
                    self.requests.append(request)
                    if request in answers:
                        self._reply(conn, request, u64.pack(answers[request]))
                    elif request == GET_CONFIG:
                        # offset, size, flags, then the config space: zeros
                        self._reply(conn, request,
                                    payload[:12] + bytes(len(payload) - 12))
                    elif request == GET_VRING_BASE:
                        self._reply(conn, request, payload[:4] + bytes(4))
                    elif flags & FLAG_NEED_REPLY:
                        self._reply(conn, request, u64.pack(0))
            except (EOFError, OSError):
                return
