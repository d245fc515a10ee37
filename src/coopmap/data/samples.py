"""The samples of an indexed split: for each complete frame, its ego(s) and cooperating agents (spec 1).

:class:`SampleKey` names one sample; :func:`select_samples` draws them from a :class:`~coopmap.data.index.DatasetIndex`
in (scenario, timestamp, ego) order, with our ego policies (``first``, ``all``) or OpenCOOD's / HEAL's evaluation
order (``opencood``).
"""

from __future__ import annotations

from dataclasses import dataclass

from coopmap.data.index import CAMERAS, DatasetIndex, ScenarioIndex, is_rsu

__all__ = ["SampleKey", "choose_egos", "cooperators", "opencood_agent_order", "select_samples"]


@dataclass(frozen=True)
class SampleKey:
    """One training / evaluation sample: a frame, its ego and the agents whose cameras form the views.

    agent_ids: ego first, then the cooperating agents in id string order (``opencood`` policy: OpenCOOD's list
    order); views are the cameras of each (``cameras``, per agent; empty = camera0..3 of every agent).
    """

    split: str
    scenario: str
    timestamp: str
    ego_id: str
    agent_ids: tuple[str, ...]
    mode: str
    cameras: tuple[tuple[int, ...], ...] = ()

    def agent_cameras(self, i: int) -> tuple[int, ...]:
        """Camera indices of ``agent_ids[i]``."""
        return self.cameras[i] if self.cameras else CAMERAS

    @property
    def n_views(self) -> int:
        return sum(len(self.agent_cameras(i)) for i in range(len(self.agent_ids)))


def choose_egos(agents: list[str], policy: str = "first") -> list[str]:
    """Egos of a frame among the agents present: the first CAV in string order (``first``) or every CAV in turn
    (``all``); an RSU is never ego. (``opencood`` is decided per scenario: :func:`opencood_agent_order`.)"""
    cavs = sorted(a for a in agents if not is_rsu(a))
    if policy == "first":
        return cavs[:1]
    if policy == "all":
        return cavs
    raise ValueError(f"ego_policy must be 'first', 'all' or 'opencood', got {policy!r}")


def opencood_agent_order(agents: list[str], max_cav: int) -> list[str]:
    """OpenCOOD's / HEAL's (evaluation) agent list of a scenario: folder names in string order, the first one moved
    to the end if it is an RSU (only the first: with two RSUs the ego is an RSU), then the first ``max_cav``.
    Element 0 is the ego of every frame."""
    order = sorted(agents)
    if order and is_rsu(order[0]):
        order = order[1:] + order[:1]
    return order[:max(0, max_cav)]


def cooperators(ego: str, positions: dict[str, list[float]], com_range: float, max_cav: int) -> list[str]:
    """Agents within ``com_range`` metres (2D distance of the LiDARs, as OpenCOOD) of the ego, at most
    ``max_cav - 1`` (the nearest when more are in range), returned in id string order. RSUs may cooperate."""
    ex, ey = positions[ego][:2]
    near = []
    for a, (x, y, _z) in positions.items():
        d = ((x - ex) ** 2 + (y - ey) ** 2) ** 0.5
        if a != ego and d <= com_range:
            near.append((d, a))
    near.sort()
    return sorted(a for _, a in near[:max(0, max_cav - 1)])


def _in_range(ego: str, others: list[str], positions: dict[str, list[float]], com_range: float) -> list[str]:
    ex, ey = positions[ego][:2]
    return [a for a in others if a in positions
            and ((positions[a][0] - ex) ** 2 + (positions[a][1] - ey) ** 2) ** 0.5 <= com_range]


def _cams(scen: ScenarioIndex, agents: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """Per agent its camera list; () when every agent has camera0..3 (the common case)."""
    cams = tuple(scen.agent_cameras(a) for a in agents)
    return () if all(c == CAMERAS for c in cams) else cams


def select_samples(index: DatasetIndex, split: str, mode: str = "coop", ego_policy: str = "first",
                   com_range: float = 70.0, max_cav: int = 5) -> list[SampleKey]:
    """The samples of a split in (scenario, timestamp, ego) order.

    mode: ``single`` (the ego alone), ``coop`` (ego + cooperators) or ``mixed`` (for each frame and ego the single
    sample, then the coop one when it has cooperators).
    ego_policy: ``first`` / ``all`` (:func:`choose_egos`, cooperators = the nearest ``max_cav - 1`` in range) or
    ``opencood`` (OpenCOOD's / HEAL's evaluation order, :func:`opencood_agent_order`: the ego may be an RSU, agents
    beyond ``max_cav`` in list order never take part, cooperators = the rest of the list in range).
    """
    if mode not in ("single", "coop", "mixed"):
        raise ValueError(f"mode must be single, coop or mixed, got {mode!r}")
    if ego_policy not in ("first", "all", "opencood"):
        raise ValueError(f"ego_policy must be 'first', 'all' or 'opencood', got {ego_policy!r}")
    keys = []
    for scen in index.scenarios:
        if scen.split != split:
            continue
        order = opencood_agent_order(scen.agents, max_cav) if ego_policy == "opencood" else []
        for ts in scen.timestamps:
            positions = scen.frames[ts]
            if ego_policy == "opencood":  # frames of the list's first agent; cooperators in list order
                if not order or order[0] not in positions:
                    continue
                pairs = [(order[0], (order[0], *_in_range(order[0], order[1:], positions, com_range)))]
            else:
                pairs = [(ego, (ego, *cooperators(ego, positions, com_range, max_cav)))
                         for ego in choose_egos(list(positions), ego_policy)]
            for ego, coop in pairs:
                if mode in ("single", "mixed"):
                    keys.append(SampleKey(split, scen.name, ts, ego, (ego,), "single", _cams(scen, (ego,))))
                if mode == "coop" or (mode == "mixed" and len(coop) > 1):
                    keys.append(SampleKey(split, scen.name, ts, ego, coop, "coop", _cams(scen, coop)))
    return keys
