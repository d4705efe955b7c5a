"""Prompt template node."""
import re

from .base import FlowError, Node

# Only {identifier} is a placeholder. str.format would let a template from the request reach
# attributes ("{x.__class__.__mro__}"), so templates are never passed to it.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PromptTemplate(Node):
    ROLE = "prompt"
    PARAMS = {"template": ((str,), Node.REQUIRED)}

    def check(self):
        if not self.template.strip():
            raise self.bad("parameter 'template' is empty")
        if len(self.template) > 10000:
            raise self.bad("parameter 'template' is longer than 10000 characters")
        self.variables = sorted(set(PLACEHOLDER.findall(self.template)))

    def format(self, values):
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise FlowError(f"input '{missing[0]}' used by node '{self.id}' is missing from "
                            "'inputs'")
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.template)
