"""The chain node: prompt -> model -> parser, with an optional conversation memory."""
from .base import Node


class LLMChain(Node):
    ROLE = "chain"
    INPUTS = {"prompt": ("prompt",), "llm": ("llm",), "memory": ("memory",),
              "parser": ("parser",)}
    REQUIRED_INPUTS = ("prompt", "llm")

    def __init__(self, node_id, params, graph):
        super().__init__(node_id, params, graph)
        self.memory = self.parser = None
        self.turn = 0
        self.steps = []  # (node, value) per step: more references from the chain to its nodes

    def on_memory_saved(self, memory):
        self.turn = len(memory.turns)

    def run(self, inputs, session_id):
        values = dict(inputs)
        values["history"] = ""
        if self.memory is not None:
            self.memory.attach(self, session_id)
            values["history"] = self.memory.render()
        prompt = self.prompt.format(values)
        self.steps.append((self.prompt, prompt))
        answer = self.llm.generate(prompt)
        self.steps.append((self.llm, answer))
        output = self.parser.parse(answer) if self.parser is not None else answer
        self.steps.append((self.parser, output))
        if self.memory is not None:
            self.memory.save(inputs, answer)
        return {"output": output, "turn": self.turn, "fingerprint": self.llm.fingerprint}
