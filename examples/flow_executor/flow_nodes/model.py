"""A deterministic local "language model": no network, no weights, some CPU work per call."""
import hashlib
import re
from collections import Counter

from .base import Node

WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
STOPWORDS = frozenset("""about after also been before being between both could does each from have
into just more most much only other over same should some such than that their them then there
these they this those through under very what when where which while with would your""".split())


def last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else ""


def reverse(model, prompt):
    return " ".join(reversed(last_line(prompt).split()))


def upper(model, prompt):
    return last_line(prompt).upper()


def keywords(model, prompt):
    counts = Counter(w.lower() for w in WORD.findall(prompt))
    ranked = sorted((w for w in counts if len(w) >= 4 and w not in STOPWORDS),
                    key=lambda w: (-counts[w], w))
    return ", ".join(ranked[:model.top_k])


def stats(model, prompt):
    words = WORD.findall(prompt)
    longest = max(words, key=lambda w: (len(w), w)) if words else ""
    return (f"words: {len(words)}\nlines: {len(prompt.splitlines())}\nlongest: {longest}")


STYLES = {"reverse": reverse, "upper": upper, "keywords": keywords, "stats": stats}


class LocalTextModel(Node):
    """Answers with a fixed transformation of the prompt (`style`), after `work` rounds of
    hashing that stand in for inference and give the answer a fingerprint."""

    ROLE = "llm"
    PARAMS = {"style": ((str,), "reverse"), "work": ((int,), 2000), "top_k": ((int,), 3)}

    def check(self):
        if self.style not in STYLES:
            raise self.bad(f"parameter 'style' must be one of {', '.join(STYLES)}, got "
                           f"'{self.style}'")
        if not 0 <= self.work <= 200000:  # bounded: a request must not buy unbounded CPU
            raise self.bad("parameter 'work' must be between 0 and 200000")
        if not 1 <= self.top_k <= 50:
            raise self.bad("parameter 'top_k' must be between 1 and 50")

    def generate(self, prompt):
        digest = prompt.encode()
        for _ in range(self.work):
            digest = hashlib.blake2b(digest, digest_size=16).digest()
        self.fingerprint = digest.hex()[:12]
        return STYLES[self.style](self, prompt)
