"""The node base class, parameter checking and the error a flow reports to its client."""


class FlowError(Exception):
    """A flow the executor refuses: `status` is the HTTP status the client gets."""

    def __init__(self, message, status=422):
        super().__init__(message)
        self.status = status


class Node:
    """A node of a flow graph.

    Subclasses declare `ROLE` (what an edge may plug it in as), `PARAMS` (name -> (types,
    default); a default of `REQUIRED` makes it mandatory) and `INPUTS` (input name -> roles it
    accepts); `REQUIRED_INPUTS` must be wired.
    """

    ROLE = "node"
    PARAMS = {}
    INPUTS = {}
    REQUIRED_INPUTS = ()
    REQUIRED = object()

    def __init__(self, node_id, params, graph):
        self.id = node_id
        self.graph = graph  # back-reference: graph -> node -> graph is a reference cycle
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            accepted = ", ".join(sorted(self.PARAMS)) or "none"
            raise FlowError(f"node '{node_id}' ({type(self).__name__}): unknown parameter "
                            f"'{unknown[0]}' (accepted: {accepted})")
        for name, (types, default) in self.PARAMS.items():
            if name not in params:
                if default is self.REQUIRED:
                    raise FlowError(f"node '{node_id}' ({type(self).__name__}): parameter "
                                    f"'{name}' is required")
                value = default
            else:
                value = params[name]
                # bool is an int to Python, never a valid count here
                if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                    names = "/".join(t.__name__ for t in types)
                    raise FlowError(f"node '{node_id}' ({type(self).__name__}): parameter "
                                    f"'{name}' must be {names}, got {type(value).__name__}")
            setattr(self, name, value)
        self.check()

    def check(self):
        """Validates parameter values beyond their types; raises FlowError."""

    def bad(self, message):
        return FlowError(f"node '{self.id}' ({type(self).__name__}): {message}")

    def connect(self, name, node):
        setattr(self, name, node)
