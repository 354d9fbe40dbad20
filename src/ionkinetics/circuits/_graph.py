"""Circuit elements and their networkx graph, series/parallel composition, and validation.

A circuit is a ``networkx.MultiDiGraph``: nodes are circuit nodes (ground is ``"0"``), every
edge ``a → b`` (key = the element's name) carries one two-terminal element under the ``element``
attribute. Branch voltage is ``v_a − v_b`` and branch current flows from ``a`` to ``b`` through
the element, so an element absorbs power ``v·i``.

Units: resistance ``r_ohm``, capacitance ``c_f`` (SI, as SPICE takes them); voltages in volts,
currents in pA, time in ns. Inside the solver a conductance is in pS (pS·V = pA) and a
capacitance in pA·ns/V (= 1e-21 F).
"""

from __future__ import annotations

import dataclasses
import itertools

import networkx as nx

from .._checks import check_real
from ..kinetics import protocols as _protocols

__all__ = [
    "GROUND",
    "Block",
    "Capacitor",
    "CurrentSource",
    "Element",
    "Membrane",
    "Resistor",
    "VoltageSource",
    "circuit",
    "parallel",
    "series",
    "validate",
]

GROUND = "0"
PS_PER_SIEMENS = 1e12
CAP_UNIT_PER_FARAD = 1e21  # pA·ns/V per F


@dataclasses.dataclass(frozen=True)
class Element:
    """Base of the two-terminal elements; ``name`` is unique within a circuit."""

    name: str

    prefix = "X"

    def check(self) -> None:
        """Raise ``ValueError`` unless ``name`` is a non-empty string without whitespace."""
        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"element name must be a non-empty string without spaces; got {self.name!r}")


@dataclasses.dataclass(frozen=True)
class Resistor(Element):
    """Ohmic element, e.g. the electrolyte's access resistance. ``r_ohm`` in ohms."""

    r_ohm: float = 1e9
    prefix = "R"

    def check(self):
        """Raise ``ValueError`` unless the name is valid and ``r_ohm`` is a finite number > 0."""
        super().check()
        check_real(
            f"element {self.name!r}: r_ohm (resistance, ohm)",
            self.r_ohm,
            "must be a finite number > 0",
            positive=True,
            numpy_scalars=False,
        )


@dataclasses.dataclass(frozen=True)
class Capacitor(Element):
    """Linear capacitor, e.g. the membrane or double-layer capacitance. ``c_f`` in farads."""

    c_f: float = 1e-18
    prefix = "C"

    def check(self):
        """Raise ``ValueError`` unless the name is valid and ``c_f`` is a finite number > 0."""
        super().check()
        check_real(
            f"element {self.name!r}: c_f (capacitance, F)",
            self.c_f,
            "must be a finite number > 0",
            positive=True,
            numpy_scalars=False,
        )


@dataclasses.dataclass(frozen=True)
class _Source(Element):
    protocol: _protocols.Protocol  # required (check() refuses anything but a protocol)

    def check(self):
        super().check()
        if not isinstance(self.protocol, _protocols.Protocol):
            raise ValueError(f"element {self.name!r}: protocol must be an ionkinetics protocol; got {self.protocol!r}")


@dataclasses.dataclass(frozen=True)
class VoltageSource(_Source):
    """Ideal voltage source ``v_a − v_b = protocol(t)`` (volts)."""

    prefix = "V"


@dataclasses.dataclass(frozen=True)
class CurrentSource(_Source):
    """Ideal current source pushing ``protocol(t)`` pA from ``a`` to ``b`` through itself
    (the protocol's values are read as pA)."""

    prefix = "I"


@dataclasses.dataclass(frozen=True)
class Membrane(Element):
    """An ionic membrane of ``n_pores`` identical pores with the kinetics of ``calibration``
    (a system id, a calibration JSON path or a Calibration). ``stochastic=True`` switches the
    pores one by one (exact multinomial moves, explicit key); otherwise mean-field."""

    calibration: object = None
    n_pores: int = 1
    stochastic: bool = False
    prefix = "M"

    def check(self):
        """Raise ``ValueError`` unless the name is valid, ``n_pores`` is an integer >= 1, ``stochastic`` a bool and
        ``calibration`` loads."""
        super().check()
        if isinstance(self.n_pores, bool) or not isinstance(self.n_pores, int) or self.n_pores < 1:
            raise ValueError(f"element {self.name!r}: n_pores must be an integer >= 1; got {self.n_pores!r}")
        if not isinstance(self.stochastic, bool):
            raise ValueError(f"element {self.name!r}: stochastic must be true or false; got {self.stochastic!r}")
        self.load()

    def load(self):
        """The :class:`~ionkinetics.calibrate.Calibration` that ``calibration`` names; a missing or invalid one raises
        ``ValueError`` naming this element."""
        from ..calibrate import load_calibration

        try:
            return load_calibration(self.calibration)
        except FileNotFoundError as exc:  # a misspelt path: the message names the file, not a system-id rule
            raise ValueError(f"element {self.name!r}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"element {self.name!r}: unknown or invalid calibration {self.calibration!r}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class Block:
    """A two-terminal sub-circuit (terminals ``p`` and ``n``) for series/parallel composition."""

    graph: nx.MultiDiGraph
    p: str
    n: str


_counter = itertools.count()


def _as_block(part) -> Block:
    if isinstance(part, Block):
        return part
    if isinstance(part, Element):
        if isinstance(part, (VoltageSource, CurrentSource)):
            raise ValueError(f"element {part.name!r}: sources drive a circuit; pass them to circuit(), not series/parallel")
        part.check()
        g = nx.MultiDiGraph()
        p, n = f"_n{next(_counter)}", f"_n{next(_counter)}"
        g.add_edge(p, n, key=part.name, element=part)
        return Block(g, p, n)
    raise TypeError(f"series/parallel take elements or blocks; got {type(part).__name__}")


def _merge(blocks, joins) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    for b in blocks:
        for a, c, key, data in b.graph.edges(keys=True, data=True):
            if g.has_edge(a, c, key) or any(key == k for *_, k in g.edges(keys=True)):
                raise ValueError(f"element name {key!r} appears twice; names must be unique in a circuit")
            g.add_edge(a, c, key=key, **data)
    return nx.relabel_nodes(g, joins, copy=True) if joins else g


def series(*parts) -> Block:
    """Elements or blocks end to end: ``p`` of the first, ``n`` of the last."""
    if len(parts) < 1:
        raise ValueError("series needs at least one element or block")
    blocks = [_as_block(p) for p in parts]
    joins = {b.p: a.n for a, b in itertools.pairwise(blocks)}
    g = _merge(blocks, joins)
    return Block(g, joins.get(blocks[0].p, blocks[0].p), blocks[-1].n)


def parallel(*parts) -> Block:
    """Elements or blocks side by side between common terminals."""
    if len(parts) < 1:
        raise ValueError("parallel needs at least one element or block")
    blocks = [_as_block(p) for p in parts]
    joins = {}
    for b in blocks[1:]:
        joins[b.p], joins[b.n] = blocks[0].p, blocks[0].n
    return Block(_merge(blocks, joins), blocks[0].p, blocks[0].n)


def circuit(load, source: VoltageSource | CurrentSource, *, node: str = "in") -> nx.MultiDiGraph:
    """Drive a block (or a single element) from ``source`` between ``node`` and ground.

    Internal nodes of the block are renamed ``n1, n2, ...`` in a stable order."""
    block = _as_block(load)
    if not isinstance(source, (VoltageSource, CurrentSource)):
        raise TypeError(f"source must be a VoltageSource or CurrentSource; got {type(source).__name__}")
    source.check()
    inner = [x for x in block.graph if x not in (block.p, block.n)]  # insertion order: stable
    mapping = {block.p: node, block.n: GROUND, **{x: f"n{i + 1}" for i, x in enumerate(inner)}}
    g = nx.relabel_nodes(block.graph, mapping, copy=True)
    if any(k == source.name for *_, k in g.edges(keys=True)):
        raise ValueError(f"element name {source.name!r} appears twice; names must be unique in a circuit")
    g.add_edge(node, GROUND, key=source.name, element=source)
    return g


def elements(graph: nx.MultiDiGraph):
    """``(a, b, element)`` for every edge, in a stable order (by element name)."""
    return sorted(((a, b, d["element"]) for a, b, d in graph.edges(data=True)), key=lambda e: e[2].name)


def validate(graph: nx.MultiDiGraph) -> None:
    """Raise ``ValueError`` naming the element or node and the rule, for a circuit that cannot be solved."""
    if not isinstance(graph, nx.MultiDiGraph):
        raise TypeError(f"a circuit is a networkx.MultiDiGraph; got {type(graph).__name__}")
    if GROUND not in graph:
        raise ValueError(f"circuit has no ground: one node must be named {GROUND!r}")
    names = set()
    for a, b, key, data in graph.edges(keys=True, data=True):
        el = data.get("element")
        if not isinstance(el, Element):
            raise ValueError(f"edge {a!r}→{b!r} (key {key!r}) carries no element; set element=Resistor(...) etc.")
        if el.name != key:
            raise ValueError(f"element {el.name!r} is stored under the edge key {key!r}; they must match")
        if el.name in names:
            raise ValueError(f"element name {el.name!r} appears twice; names must be unique in a circuit")
        names.add(el.name)
        if a == b:
            raise ValueError(f"element {el.name!r} connects node {a!r} to itself")
        if type(el) not in (Resistor, Capacitor, VoltageSource, CurrentSource, Membrane):
            raise ValueError(
                f"element {el.name!r} is a {type(el).__name__}; the solver knows Resistor, Capacitor, "
                "VoltageSource, CurrentSource and Membrane"
            )
        el.check()
    for node in graph:
        if graph.degree(node) < 2:
            attached = [k for *_, k in graph.edges(node, keys=True)] + [k for *_, k in graph.in_edges(node, keys=True)]
            raise ValueError(f"node {node!r} is floating: only one element ({', '.join(attached)}) connects to it")
    und = nx.Graph(graph)
    for comp in nx.connected_components(und):
        if GROUND not in comp:
            raise ValueError(f"nodes {sorted(comp)} are floating: no element connects them to ground {GROUND!r}")
    # a DC path to ground through elements that conduct at DC (not capacitors, not current sources)
    dc = nx.Graph()
    dc.add_nodes_from(graph)
    dc.add_edges_from((a, b) for a, b, el in elements(graph) if not isinstance(el, (Capacitor, CurrentSource)))
    reach = nx.node_connected_component(dc, GROUND)
    cut = sorted(set(graph) - reach)
    if cut:
        raise ValueError(
            f"nodes {cut} are floating at DC: only capacitors or current sources connect them to ground; "
            "add a resistive path (e.g. a large resistor) so the operating point is defined"
        )
    # Voltage sources and capacitors must not form a loop: its voltages would be over-determined,
    # and a source step inside it would need an infinite current.
    loop = nx.MultiGraph()
    for a, b, el in elements(graph):
        if isinstance(el, (VoltageSource, Capacitor)):
            loop.add_edge(a, b, key=el.name)
    try:
        cycle = nx.find_cycle(loop)
    except nx.NetworkXNoCycle:
        return
    members = sorted(k for *_, k in cycle)
    raise ValueError(f"elements {members} form a loop of voltage sources and/or capacitors; put a resistor in the loop")
