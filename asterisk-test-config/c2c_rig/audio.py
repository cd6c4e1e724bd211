"""Audio for the rig's peers and for reading what Asterisk recorded (stdlib only).

The trunk's talking number (``...700``) streams ``talk.wav`` as RTP (sipp's ``rtp_stream``
plays a mu-law WAV, payload 0): a 440 Hz tone, so a recording of the call is never silent
unless something muted it. Music on hold plays ``hold.ulaw`` (raw mu-law, Asterisk's
``format_pcm``). ``wav_levels`` reads a recording (MixMonitor writes 16-bit PCM WAV) as the
loudness of each 100 ms, for tests to find a masked span.
"""
from __future__ import annotations

import math
import struct
import wave

RATE = 8000
TALK_HZ = 440
HOLD_HZ = 660


def _ulaw(sample: int) -> int:
    """G.711 mu-law of one 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent, mask = 7, 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_ulaw(seconds: float, hz: int, amplitude: int = 12000) -> bytes:
    return bytes(_ulaw(int(amplitude * math.sin(2 * math.pi * hz * n / RATE))) for n in range(int(RATE * seconds)))


def write_ulaw_wav(path: str, seconds: float = 10.0, hz: int = TALK_HZ) -> None:
    """A mu-law WAV (format 7, 8 kHz mono), as sipp's rtp_stream wants it."""
    data = tone_ulaw(seconds, hz)
    fmt = struct.pack("<HHIIHH", 7, 1, RATE, RATE, 1, 8)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def write_raw_ulaw(path: str, seconds: float = 10.0, hz: int = HOLD_HZ) -> None:
    """Raw mu-law (.ulaw) for music on hold."""
    with open(path, "wb") as f:
        f.write(tone_ulaw(seconds, hz))


def wav_seconds(path: str) -> float:
    with wave.open(path, "rb") as w:
        return w.getnframes() / w.getframerate()


def wav_levels(path: str, window: float = 0.1) -> list[float]:
    """The RMS level (0..32767) of each ``window`` seconds of a 16-bit PCM WAV."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: not 16-bit mono PCM")
        frames, rate = w.readframes(w.getnframes()), w.getframerate()
    samples = struct.unpack(f"<{len(frames) // 2}h", frames[:len(frames) // 2 * 2])
    step = max(1, int(rate * window))
    return [math.sqrt(sum(s * s for s in samples[i:i + step]) / len(samples[i:i + step]))
            for i in range(0, len(samples), step)]
