"""Conversation memory buffer node."""
from .base import FlowError, Node

# session id -> every (user, assistant) turn this worker has seen. Module-level and never
# evicted, like the per-session caches of real flow backends: the natural leak.
SESSIONS = {}


class ConversationBufferMemory(Node):
    ROLE = "memory"
    PARAMS = {"window": ((int,), 3), "input_key": ((str,), "message"),
              "human_prefix": ((str,), "User"), "ai_prefix": ((str,), "Assistant")}

    def check(self):
        if not 0 <= self.window <= 100:
            raise self.bad("parameter 'window' must be between 0 and 100")

    def attach(self, chain, session_id):
        self.chain = chain  # calls back into the chain: chain <-> memory is a reference cycle
        self.turns = SESSIONS.setdefault(session_id, [])

    def render(self):
        recent = self.turns[-self.window:] if self.window else []
        return "".join(f"{self.human_prefix}: {u}\n{self.ai_prefix}: {a}\n" for u, a in recent)

    def save(self, inputs, answer):
        if self.input_key not in inputs:
            raise FlowError(f"input '{self.input_key}' used by node '{self.id}' is missing from "
                            "'inputs'")
        self.turns.append((str(inputs[self.input_key]), answer))
        self.chain.on_memory_saved(self)
