"""Node classes of the flow executor example, and the builder that wires them from JSON.

A flow names its node classes by dotted path (``flow_nodes.prompt.PromptTemplate``), the way
visual flow builders do; only the paths in ``builder.ALLOWED_TYPES`` are ever imported.
"""
