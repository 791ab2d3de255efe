"""Scanner timing as a test script: items presented at a rhythm, a code held in the field.

A script is the codes a scanner sends and the instant of each read. Tests send the codes
through the real transport and hand the adapter a ScriptedClock that answers each read
with its instant, so the verdicts follow the script however slowly a loaded machine
delivers the bytes, and no test sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Script:
    """Reads in order, each a (code, seconds) pair; `expected` the scans they should make."""

    now: float = 100.0
    reads: list[tuple[str, float]] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        """The codes in the order the scanner sends them."""
        return [code for code, _ in self.reads]

    @property
    def instants(self) -> list[float]:
        """When each read happened, in seconds."""
        return [at for _, at in self.reads]

    def present(self, code: str, times: int, every: float) -> None:
        """The same item presented `times` times, one presentation every `every` seconds."""
        for index in range(times):
            if index:
                self.now += every
            self.reads.append((code, self.now))
            self.expected.append(code)

    def hold(self, code: str, seconds: float, rate_hz: float) -> None:
        """One item held in the field: re-read `rate_hz` times a second for `seconds`."""
        reads = round(seconds * rate_hz) + 1
        for index in range(reads):
            if index:
                self.now += 1 / rate_hz
            self.reads.append((code, self.now))
        self.expected.append(code)

    def pause(self, seconds: float) -> None:
        """Nothing in the field for `seconds`."""
        self.now += seconds


class ScriptedClock:
    """Answers the n-th call with the n-th instant: one call per code the filter judges."""

    def __init__(self, instants: list[float]) -> None:
        self._instants = list(instants)
        self.calls = 0

    def __call__(self) -> float:
        if self.calls >= len(self._instants):
            raise AssertionError(f"the filter judged more than the {self.calls} scripted reads")
        at = self._instants[self.calls]
        self.calls += 1
        return at


def the_issue_script() -> Script:
    """Six yoghurts at a 0.35 s rhythm, six at 0.6 s, then a code held at 20 Hz for 2 s,
    presented again after a short gap, and a different code to end on."""
    script = Script()
    script.present("4006381333931", times=6, every=0.35)
    script.pause(0.35)
    script.present("5012345678900", times=6, every=0.6)
    script.pause(0.5)
    script.hold("7613289024044", seconds=2.0, rate_hz=20)
    script.pause(0.35)  # taken out of the field and brought back
    script.hold("7613289024044", seconds=0.5, rate_hz=20)
    script.pause(0.35)
    script.present("0000000000017", times=1, every=0)
    return script
