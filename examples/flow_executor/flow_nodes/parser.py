"""Output parser node: turns the model's text into JSON values."""
import json

from .base import FlowError, Node


class OutputParser(Node):
    ROLE = "parser"
    PARAMS = {"format": ((str,), "text"), "separator": ((str,), ",")}
    FORMATS = ("text", "list", "kv", "json")

    def check(self):
        if self.format not in self.FORMATS:
            raise self.bad(f"parameter 'format' must be one of {', '.join(self.FORMATS)}, got "
                           f"'{self.format}'")
        if not self.separator:
            raise self.bad("parameter 'separator' is empty")

    def parse(self, text):
        if self.format == "text":
            return text.strip()
        if self.format == "list":
            return [p.strip() for p in text.split(self.separator) if p.strip()]
        if self.format == "kv":
            out = {}
            for line in text.splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    value = value.strip()
                    out[key.strip()] = int(value) if value.isdigit() else value
            return out
        try:
            return json.loads(text)
        except ValueError:
            raise FlowError(f"node '{self.id}' (OutputParser): the model's answer is not JSON")
