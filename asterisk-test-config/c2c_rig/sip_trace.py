"""Reading what the sipp peers received (their -trace_msg logs): the SIP messages tests assert
on (INVITE headers, caller ID, CANCEL/BYE order), parsed just enough for that."""

import re
import time


class Headers:
    """Case-insensitive, multi-valued SIP headers in message order (compact forms expanded)."""

    COMPACT = {"i": "call-id", "f": "from", "t": "to", "m": "contact", "v": "via",
               "l": "content-length", "c": "content-type", "k": "supported", "s": "subject"}

    def __init__(self, pairs):
        self.pairs = [(self._norm(k), k, v) for k, v in pairs]

    def _norm(self, name):
        name = name.strip().lower()
        return self.COMPACT.get(name, name)

    def get(self, name, default=None):
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name):
        n = self._norm(name)
        return [v for k, _, v in self.pairs if k == n]

    def __contains__(self, name):
        return bool(self.get_all(name))

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def items(self):
        return [(orig, v) for _, orig, v in self.pairs]


_NAME_ADDR = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>|^\s*([^;\s]+)')


def parse_name_addr(value):
    """'"Name" <sip:user@host>;tag=x' -> (display name or '', uri)."""
    m = _NAME_ADDR.match(value or "")
    if not m:
        return "", ""
    if m.group(3) is not None:
        name = m.group(1) if m.group(1) is not None else (m.group(2) or "")
        return re.sub(r"\\(.)", r"\1", name).strip(), m.group(3)
    return "", m.group(4)


def uri_user(uri):
    """User part of a SIP URI ('' when it has none, e.g. sip:127.0.0.1:5060)."""
    m = re.match(r"^\s*<?sips?:([^@;>]+)@", uri or "") or re.match(r"^\s*<?tel:([^;>]+)", uri or "")
    return m.group(1) if m else ""


class SipMessage:
    """One SIP message a peer received, as sipp's -trace_msg logged it."""

    def __init__(self, raw, time_, index, peer):
        self.raw, self.time, self.index, self.peer = raw, time_, index, peer
        head, _, self.body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        self.start_line = lines[0].strip()
        pairs: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in " \t" and pairs:                        # folded header
                pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
            elif ":" in line:
                k, _, v = line.partition(":")
                pairs.append((k, v.strip()))
        self.headers = Headers(pairs)
        parts = self.start_line.split(" ", 2)
        if parts[0].startswith("SIP/"):
            self.method, self.request_uri = None, None
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        else:
            self.method, self.request_uri, self.status = parts[0], parts[1] if len(parts) > 1 else "", None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def headers_all(self, name):
        return self.headers.get_all(name)

    @property
    def request_user(self):
        return uri_user(self.request_uri)

    @property
    def from_display_name(self):
        return parse_name_addr(self.header("From", ""))[0]

    @property
    def from_user(self):
        return uri_user(parse_name_addr(self.header("From", ""))[1])

    @property
    def to_user(self):
        return uri_user(parse_name_addr(self.header("To", ""))[1])

    @property
    def call_id(self):
        return self.header("Call-ID")

    @property
    def cseq(self):
        return self.header("CSeq")

    def __repr__(self):
        return f"<SipMessage #{self.index} {self.start_line!r} at {self.peer}>"


_SEPARATOR = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)?\s*$", re.M)


def read_trace(path, peer=""):
    """Received messages of a sipp -trace_msg file, in order, retransmissions dropped."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out: list[SipMessage] = []
    seen = set()
    marks = list(_SEPARATOR.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        block = text[m.end():end].lstrip("\n")
        kind, _, msg = block.partition("\n")
        if "message received" not in kind:
            continue
        msg = msg.strip("\n")
        if not msg:
            continue
        stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + float(m.group(2) or 0)
        sm = SipMessage(msg + "\n", stamp, len(out), peer)
        key = (sm.call_id, sm.cseq, sm.start_line, (sm.headers_all("Via") or [""])[0])
        if key in seen:                                            # a retransmission
            continue
        seen.add(key)
        out.append(sm)
    return out
