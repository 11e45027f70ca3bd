"""Parts of one validation, so that a large Bundle can be validated on several cores and give the same outcome.

Part 0, the lead, walks the first `lead` entries: done first, it compiles the profiles they use, which the other
parts then find compiled. Parts 1 … `count - 1` share the remaining entries in turn; part 1 also walks the
Bundle's own elements and applies the Bundle-wide rules. Each part's findings come back as a `Share`; `merge`
makes the one outcome of them, as a single walk would have made it: findings ordered by place (the walk's order
among those at one place), each said once. A validation in one part is `merge([share])`, so a parted and a
whole validation cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.core.outcome import Issue, Outcome
from hub.fhir.values import location


@dataclass(frozen=True, slots=True)
class Part:
    index: int = 0
    count: int = 1
    lead: int = 0  # the entries part 0 walks, when parted

    def takes(self, entry: int) -> bool:
        if self.count == 1:
            return True
        if entry < self.lead:
            return self.index == 0
        return self.index > 0 and (entry - self.lead) % (self.count - 1) == self.index - 1

    @property
    def owns_root(self) -> bool:
        """Whether this part walks the Bundle itself, not only entries."""
        return self.index == (1 if self.count > 1 else 0)

    @property
    def parted(self) -> bool:
        return self.count > 1


WHOLE = Part()


@dataclass(slots=True)
class Share:
    """One part's findings: those of the walk, those of the rules applied after it (extension contexts, Bundle
    rules), and the findings said once per input (a missing profile) by what was said. Pickled whole, so the
    `once` findings stay the very objects in `walk`."""

    walk: list[Issue] = field(default_factory=list)
    after: list[Issue] = field(default_factory=list)
    once: dict[str, Issue] = field(default_factory=dict)


def merge(shares: list[Share]) -> Outcome:
    """The outcome of all parts: a finding said once per input is kept where it comes first by place."""
    kept: dict[str, Issue] = {}
    for share in shares:
        for key, issue in share.once.items():
            if key not in kept or location(issue.expression) < location(kept[key].expression):
                kept[key] = issue
    dropped = {id(issue) for share in shares for key, issue in share.once.items() if kept[key] is not issue}
    issues = [i for share in shares for i in share.walk if id(i) not in dropped]
    issues += [i for share in shares for i in share.after]
    issues.sort(key=lambda i: location(i.expression))
    # A rule the profile restates from its base (a binding, a cardinality) is one finding, not two.
    return Outcome(list(dict.fromkeys(issues)))
