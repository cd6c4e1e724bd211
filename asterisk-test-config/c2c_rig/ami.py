"""A tiny synchronous AMI client (stdlib, events off): the rig's own needs (device states,
Originate into rig-hold, Hangup) without pulling an async AMI library into a stdlib-only tool."""

import contextlib
import itertools
import os
import socket

from .errors import RigError
from .plan import RIG_SECRET, RIG_USER


class Ami:
    """Synchronous AMI client (stdlib) for the rig's own needs: events off, one action at a time."""

    _ids = itertools.count(1)

    def __init__(self, port, username=RIG_USER, secret=RIG_SECRET, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.file.readline()                                  # "Asterisk Call Manager/x.y"
        r = self.action("Login", Username=username, Secret=secret, Events="off")
        if r.get("Response") != "Success":
            self.close()
            raise RigError(f"AMI login as {username} failed: {r.get('Message')}")

    def action(self, name, variables=(), **fields):
        aid = f"rig-{os.getpid()}-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {aid}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        lines += [f"Variable: {k}={v}" for k, v in variables]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            msg = self._read()
            if msg.get("ActionID") == aid and "Response" in msg:
                return msg

    def _read(self):
        msg: dict[str, str] = {}
        while True:
            raw = self.file.readline()
            if not raw:
                raise RigError("AMI connection closed")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if msg:
                    return msg
                continue
            key, _, value = line.partition(":")
            msg.setdefault(key.strip(), value.strip())

    def getvar(self, variable):
        return self.action("Getvar", Variable=variable).get("Value", "")

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
