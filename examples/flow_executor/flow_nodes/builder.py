"""Builds a runnable graph from a flow's JSON.

Node classes are imported from the dotted paths the flow names, as visual flow builders do, but
only paths in ALLOWED_TYPES: a request never chooses what gets imported.
"""
import importlib

from .base import FlowError, Node

ALLOWED_TYPES = frozenset({
    "flow_nodes.prompt.PromptTemplate",
    "flow_nodes.model.LocalTextModel",
    "flow_nodes.memory.ConversationBufferMemory",
    "flow_nodes.parser.OutputParser",
    "flow_nodes.chain.LLMChain",
})
MAX_NODES = 64
SCALARS = (str, int, float, bool)


class Graph:
    """The nodes of one run; every node points back here."""

    def __init__(self):
        self.nodes = {}
        self.output = None

    def run(self, inputs, session_id):
        return self.output.run(inputs, session_id)


def node_class(dotted):
    if dotted not in ALLOWED_TYPES:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise FlowError(f"unknown node type '{dotted}' (allowed: {allowed})", status=400)
    module, _, name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, Node), dotted
    return cls


def expect(cond, message):
    if not cond:
        raise FlowError(message)


def build(payload):
    """(graph, inputs, session_id) from a request body already decoded from JSON."""
    expect(isinstance(payload, dict), "the body must be a JSON object with 'flow', 'inputs' and "
           "'session_id'")
    unknown = sorted(set(payload) - {"flow", "inputs", "session_id"})
    if unknown:
        raise FlowError(f"unknown field '{unknown[0]}' in the body")
    flow = payload.get("flow")
    expect(isinstance(flow, dict), "'flow' must be an object with 'nodes', 'edges' and 'output'")
    inputs = payload.get("inputs", {})
    expect(isinstance(inputs, dict), "'inputs' must be an object")
    for key, value in inputs.items():
        expect(isinstance(value, SCALARS), f"input '{key}' must be a string, number or boolean")
    session_id = payload.get("session_id", "default")
    expect(isinstance(session_id, str) and 0 < len(session_id) <= 128,
           "'session_id' must be a string of 1 to 128 characters")

    nodes = flow.get("nodes")
    expect(isinstance(nodes, list) and nodes, "'flow.nodes' must be a non-empty list")
    expect(len(nodes) <= MAX_NODES, f"a flow has at most {MAX_NODES} nodes")
    edges = flow.get("edges", [])
    expect(isinstance(edges, list), "'flow.edges' must be a list")

    graph = Graph()
    for i, spec in enumerate(nodes):
        expect(isinstance(spec, dict), f"flow.nodes[{i}] must be an object")
        node_id, dotted = spec.get("id"), spec.get("type")
        expect(isinstance(node_id, str) and node_id,
               f"flow.nodes[{i}].id must be a non-empty string")
        expect(node_id not in graph.nodes, f"duplicate node id '{node_id}'")
        expect(isinstance(dotted, str), f"node '{node_id}': 'type' must be a dotted class path")
        params = spec.get("params", {})
        expect(isinstance(params, dict), f"node '{node_id}': 'params' must be an object")
        graph.nodes[node_id] = node_class(dotted)(node_id, params, graph)

    wired = set()
    for i, edge in enumerate(edges):
        expect(isinstance(edge, dict), f"flow.edges[{i}] must be an object")
        source, target, name = edge.get("source"), edge.get("target"), edge.get("input")
        for field, value in (("source", source), ("target", target)):
            expect(isinstance(value, str) and value in graph.nodes,
                   f"flow.edges[{i}].{field} must be the id of a node, got {value!r}")
        node, feeder = graph.nodes[target], graph.nodes[source]
        expect(isinstance(name, str) and name in node.INPUTS, f"flow.edges[{i}]: node '{target}' has no input {name!r} "
               f"(inputs: {', '.join(node.INPUTS) or 'none'})")
        expect(feeder.ROLE in node.INPUTS[name], f"flow.edges[{i}]: input '{name}' of node "
               f"'{target}' takes a {' or '.join(node.INPUTS[name])}, not a {feeder.ROLE}")
        expect((target, name) not in wired, f"input '{name}' of node '{target}' is wired twice")
        wired.add((target, name))
        node.connect(name, feeder)
    for node_id, node in graph.nodes.items():
        for name in node.REQUIRED_INPUTS:
            expect((node_id, name) in wired, f"input '{name}' of node '{node_id}' is not wired")

    output = flow.get("output")
    expect(isinstance(output, str) and output in graph.nodes,
           "'flow.output' must be the id of the node whose result is returned")
    graph.output = graph.nodes[output]
    expect(hasattr(graph.output, "run"), f"output node '{output}' is not a chain")
    return graph, inputs, session_id
