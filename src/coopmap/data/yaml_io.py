"""OPV2V per-agent yaml files (spec section 3), parsed with libyaml's safe C loader.

Only the top-level keys we use are parsed: the text is cut into top-level blocks (a line at column 0 that is
neither a comment nor a sequence item starts one) and the unneeded blocks (``plan_trajectory``,
``predicted_ego_pos``, ...) are dropped before parsing; anything unusual (flow style, anchors, document markers)
is parsed whole. Parsing never builds Python objects from tags (``CSafeLoader``, falling back to the pure-Python
``SafeLoader`` only where PyYAML was built without libyaml).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from coopmap.errors import DataError
from coopmap.geometry import intrinsics_from_carla

__all__ = ["SAFE_LOADER", "AgentYaml", "CameraYaml", "Vehicles", "check_agent_yaml", "load_yaml", "numpy_scalar_value",
           "read_agent_yaml", "read_lidar_pose"]

#: libyaml's safe loader (C); PyYAML's pure-Python SafeLoader only if libyaml is missing.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TOP_KEY = re.compile(rb"^([A-Za-z_][\w]*)\s*:", re.MULTILINE)
_VEHICLES_KEY = re.compile(rb"(?:^|[{,]\s*)vehicles\s*:", re.MULTILINE)


def _select_blocks(text: bytes, keys: Iterable[str]) -> bytes | None:
    """The top-level blocks of ``keys`` from block-style YAML, or None if the text is not plain block style."""
    if text.startswith((b"%", b"---", b"{")) or b"&" in text or b"\t" in text:
        return None
    starts = [(m.start(), m.group(1)) for m in _TOP_KEY.finditer(text)]
    if not starts or starts[0][0] != _first_content(text):
        return None
    wanted = {k.encode() for k in keys}
    parts = []
    for i, (pos, key) in enumerate(starts):
        if key in wanted:
            end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
            parts.append(text[pos:end])
    return b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts)


def _first_content(text: bytes) -> int:
    pos = 0
    while pos < len(text):
        nl = text.find(b"\n", pos)
        line = text[pos:nl if nl >= 0 else len(text)]
        if line.strip() and not line.lstrip().startswith(b"#"):
            return pos
        if nl < 0:
            break
        pos = nl + 1
    return -1


def load_yaml(path: str | os.PathLike[str], keys: Iterable[str] | None = None) -> dict:
    """Parse a yaml file safely (libyaml); with ``keys``, only those top-level keys.

    Raises:
        DataError: unreadable file, invalid YAML, or a document that is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot read yaml ({err.strerror or err})") from None
    chosen = _select_blocks(text, keys) if keys is not None else None
    try:
        doc = yaml.load(chosen if chosen is not None else text, Loader=_NumpySafeLoader)  # noqa: S506 (safe loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None and chosen is None else ""
        raise DataError(path, f"invalid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise DataError(path, f"expected a mapping at the top level, got {type(doc).__name__}")
    return doc


class _NodeLoader(SAFE_LOADER):  # type: ignore[misc, valid-type]
    """libyaml composition without tag resolution: scalars stay strings, we parse the numbers we need.

    Skipping PyYAML's regex-based implicit resolver halves the cost; nothing is ever constructed from a tag.
    """

    def resolve(self, kind, value, implicit):  # noqa: D102
        if kind is yaml.ScalarNode:
            return "tag:yaml.org,2002:str"
        return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"


_YAML_SPECIAL = {".nan": math.nan, ".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf}


def _compose(path: Path, keys: Iterable[str]) -> dict[str, yaml.Node]:
    """Top-level ``key -> node`` of a yaml file, composed by libyaml (no Python object is constructed)."""
    try:
        text = path.read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot read yaml ({err.strerror or err})") from None
    keys = tuple(keys)
    chosen = _select_blocks(text, keys)
    try:
        root = yaml.compose(chosen if chosen is not None else text, Loader=_NodeLoader)  # noqa: S506
    except yaml.YAMLError as err:
        raise DataError(path, f"invalid YAML: {getattr(err, 'problem', None) or err}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise DataError(path, "expected a mapping at the top level")
    return {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value in keys}


#: tags PyYAML's ``yaml.dump`` writes for numpy scalars (numpy < 2: ``numpy.core``, numpy 2: ``numpy._core``).
_NUMPY_SCALAR_TAGS = tuple(f"tag:yaml.org,2002:python/object/apply:numpy.{m}.multiarray.scalar" for m in ("core", "_core"))
_NUMPY_DTYPE_TAG = "tag:yaml.org,2002:python/object/apply:numpy.dtype"


def numpy_scalar_value(node: yaml.Node) -> float | None:
    """The number a PyYAML dump of a numpy scalar holds, decoded from the node's text (nothing is executed or
    imported from the tag); None when the node is not such a dump or is malformed.

    The dump is ``!!python/object/apply:numpy[._]core.multiarray.scalar [dtype, !!binary <base64 bytes>]`` with
    dtype ``!!python/object/apply:numpy.dtype {args: [f8, false, true], state: [3, '<', ...]}`` (or the args list
    alone); only bool / int / uint / float dtypes of the payload's size are accepted.
    """
    if node.tag not in _NUMPY_SCALAR_TAGS or not isinstance(node, yaml.SequenceNode) or len(node.value) != 2:
        return None
    dtype_node, payload = node.value
    if dtype_node.tag != _NUMPY_DTYPE_TAG or not isinstance(payload, yaml.ScalarNode):
        return None
    fields = ({k.value: v for k, v in dtype_node.value if isinstance(k, yaml.ScalarNode)}
              if isinstance(dtype_node, yaml.MappingNode) else {"args": dtype_node})
    args, state = fields.get("args"), fields.get("state")
    if not isinstance(args, yaml.SequenceNode) or not args.value or not isinstance(args.value[0], yaml.ScalarNode):
        return None
    order = "<"
    if isinstance(state, yaml.SequenceNode) and len(state.value) > 1 and isinstance(state.value[1], yaml.ScalarNode):
        order = {"<": "<", ">": ">", "|": "|", "=": "="}.get(state.value[1].value, "<")
    try:
        dtype = np.dtype(args.value[0].value).newbyteorder(order)
        raw = base64.b64decode(payload.value, validate=False)
    except (TypeError, ValueError, binascii.Error):
        return None
    if dtype.kind not in "biuf" or len(raw) != dtype.itemsize:
        return None
    return float(np.frombuffer(raw, dtype=dtype)[0])


class _NumpySafeLoader(SAFE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, plus PyYAML dumps of numpy scalars read as numbers (decoded, never constructed)."""


def _construct_numpy_scalar(loader, node):
    value = numpy_scalar_value(node)
    if value is None:
        raise yaml.constructor.ConstructorError(None, None, f"unsupported numpy value {node.tag}", node.start_mark)
    return value


for _tag in _NUMPY_SCALAR_TAGS:
    _NumpySafeLoader.add_constructor(_tag, _construct_numpy_scalar)


def _number(path: Path, node: yaml.Node, where: str) -> float:
    if not isinstance(node, yaml.ScalarNode):
        value = numpy_scalar_value(node)
        if value is not None:
            return value
        raise DataError(path, f"'{where}' must contain numbers, got a {node.id}")
    text = node.value
    try:
        return float(text)
    except ValueError:
        special = _YAML_SPECIAL.get(text.lower())
        if special is None:
            raise DataError(path, f"'{where}' has a non-number {text[:40]!r}") from None
        return special


def _numbers(path: Path, node: yaml.Node | None, n: int, where: str) -> list[float]:
    """A sequence node of ``n`` numbers -> list of floats (not checked for finiteness)."""
    if node is None:
        raise DataError(path, f"missing key '{where}'")
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != n:
        got = f"{len(node.value)} values" if isinstance(node, yaml.SequenceNode) else f"a {node.id}"
        raise DataError(path, f"'{where}' must be a list of {n} numbers, got {got}")
    return [_number(path, v, where) for v in node.value]


def _vector(path: Path, node: yaml.Node | None, n: int, where: str) -> np.ndarray:
    """A sequence node of ``n`` finite numbers -> (n,) float64."""
    arr = np.array(_numbers(path, node, n, where), dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DataError(path, f"'{where}' has a non-finite value: {arr.tolist()}")
    return arr


def _mapping(path: Path, node: yaml.Node | None, where: str) -> dict[str, yaml.Node]:
    if node is None:
        raise DataError(path, f"missing key '{where}'")
    if not isinstance(node, yaml.MappingNode):
        raise DataError(path, f"'{where}' must be a mapping, got a {node.id}")
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


@dataclass(frozen=True)
class CameraYaml:
    """One camera: ``cords`` (6,) CARLA pose [x,y,z,roll,yaw,pitch]; ``intrinsic`` (3, 3) K at native size as
    written (CARLA's: principal point in pixel-edge coordinates)."""

    cords: np.ndarray
    intrinsic: np.ndarray

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsics with pixel centres at integers: ``intrinsics_from_carla(intrinsic)``."""
        return intrinsics_from_carla(self.intrinsic)


@dataclass(frozen=True)
class Vehicles:
    """The ``vehicles`` listed by one agent (it excludes itself), as arrays sorted by id.

    ids (N,) int64; location, center, extent (half sizes), angle ([roll, yaw, pitch]): (N, 3) float64.
    """

    ids: np.ndarray
    location: np.ndarray
    center: np.ndarray
    extent: np.ndarray
    angle: np.ndarray

    @staticmethod
    def empty() -> Vehicles:
        z = np.zeros((0, 3))
        return Vehicles(np.zeros(0, dtype=np.int64), z, z, z, z)


@dataclass(frozen=True)
class AgentYaml:
    """What we use of one agent's ``TTTTTT.yaml``: CARLA (left-handed) poses, cameras and listed vehicles."""

    path: str
    lidar_pose: np.ndarray
    true_ego_pos: np.ndarray
    cameras: dict[int, CameraYaml]
    vehicles: Vehicles


def _camera(path: Path, node: yaml.Node | None, k: int) -> CameraYaml:
    name = f"camera{k}"
    block = _mapping(path, node, name)
    cords = _vector(path, block.get("cords"), 6, f"{name}.cords")
    rows = block.get("intrinsic")
    where = f"{name}.intrinsic"
    if rows is None:
        raise DataError(path, f"missing key '{where}'")
    if not isinstance(rows, yaml.SequenceNode) or len(rows.value) != 3:
        raise DataError(path, f"'{where}' must be a 3x3 matrix")
    K = np.stack([_vector(path, r, 3, where) for r in rows.value])
    if abs(np.linalg.det(K)) < 1e-9 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(path, f"'{where}' is not an invertible camera matrix: {K.tolist()}")
    return CameraYaml(cords, K)


def _vehicles(path: Path, node: yaml.Node | None) -> Vehicles:
    if node is None:
        raise DataError(path, "missing key 'vehicles'")
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null", "{}"):
        return Vehicles.empty()
    block = _mapping(path, node, "vehicles")
    ids, values = [], []
    for vid, entry in block.items():
        try:
            ids.append(int(vid))
        except ValueError:
            raise DataError(path, f"'vehicles' has a non-integer id {vid!r}") from None
        fields = _mapping(path, entry, f"vehicles.{vid}")
        for k in ("location", "center", "extent", "angle"):
            if k == "center" and "center" not in fields:  # as HEAL: a missing box-centre offset is [0, 0, 0]
                values.extend((0.0, 0.0, 0.0))
                continue
            values.extend(_numbers(path, fields.get(k), 3, f"vehicles.{vid}.{k}"))
    if not ids:
        return Vehicles.empty()
    order = np.argsort(ids, kind="stable")
    arr = np.asarray(values, dtype=np.float64).reshape(len(ids), 4, 3)[order]
    id_arr = np.asarray(ids, dtype=np.int64)[order]
    bad = ~np.isfinite(arr).all(axis=2)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        key = ("location", "center", "extent", "angle")[j]
        raise DataError(path, f"'vehicles.{int(id_arr[i])}.{key}' has a non-finite value: {arr[i, j].tolist()}")
    negative = np.any(arr[:, 2] < 0, axis=1)
    if negative.any():
        raise DataError(path, f"'vehicles.{int(id_arr[negative][0])}.extent' must be non-negative half sizes")
    return Vehicles(id_arr, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


def read_agent_yaml(path: str | os.PathLike[str], cameras: Iterable[int] = (0, 1, 2, 3)) -> AgentYaml:
    """Read and validate what coopmap needs from one agent's yaml.

    Checks: ``lidar_pose`` and ``true_ego_pos`` are 6 finite numbers; every requested ``cameraK`` has 6 finite
    ``cords`` and a finite invertible 3x3 ``intrinsic``; every ``vehicles`` entry has 3 finite numbers for
    ``location``, ``center`` (missing: [0, 0, 0], as HEAL), ``extent`` (>= 0) and ``angle``. Numbers may be
    PyYAML dumps of numpy scalars (decoded, never constructed: :func:`numpy_scalar_value`).

    Raises:
        DataError: naming the file and the offending key.
    """
    path = Path(path)
    cams = tuple(cameras)
    top = _compose(path, ("lidar_pose", "true_ego_pos", "vehicles") + tuple(f"camera{k}" for k in cams))
    return AgentYaml(
        path=str(path),
        lidar_pose=_vector(path, top.get("lidar_pose"), 6, "lidar_pose"),
        true_ego_pos=_vector(path, top.get("true_ego_pos"), 6, "true_ego_pos"),
        cameras={k: _camera(path, top.get(f"camera{k}"), k) for k in cams},
        vehicles=_vehicles(path, top.get("vehicles")),
    )


def check_agent_yaml(path: str | os.PathLike[str], cameras: Iterable[int] = (0, 1, 2, 3),
                     deep: bool = False) -> dict[int, CameraYaml]:
    """Validate an agent yaml for ``coopmap index``; returns its cameras.

    Cheap (default): ``lidar_pose``, ``true_ego_pos`` and the cameras are parsed and validated as in
    :func:`read_agent_yaml`, and ``vehicles`` must be a top-level key (its entries are not parsed). ``deep``: the
    whole of :func:`read_agent_yaml`.

    Raises:
        DataError: naming the file and the offending key.
    """
    path = Path(path)
    cams = tuple(cameras)
    if deep:
        return read_agent_yaml(path, cams).cameras
    top = _compose(path, ("lidar_pose", "true_ego_pos") + tuple(f"camera{k}" for k in cams))
    _vector(path, top.get("lidar_pose"), 6, "lidar_pose")
    _vector(path, top.get("true_ego_pos"), 6, "true_ego_pos")
    if _VEHICLES_KEY.search(path.read_bytes()) is None:
        raise DataError(path, "missing key 'vehicles'")
    return {k: _camera(path, top.get(f"camera{k}"), k) for k in cams}


def read_lidar_pose(path: str | os.PathLike[str]) -> np.ndarray:
    """Only ``lidar_pose`` (6,) of an agent yaml (what the index needs), validated as in read_agent_yaml."""
    path = Path(path)
    return _vector(path, _compose(path, ("lidar_pose",)).get("lidar_pose"), 6, "lidar_pose")
