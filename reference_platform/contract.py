"""openapi.yaml as the enforced contract: every route's parameters and JSON body are checked
against it, so the document cannot drift from what the server accepts."""

import os
import re

import jsonschema
import yaml

from .validation import first_error

HERE = os.path.dirname(os.path.abspath(__file__))
OPENAPI_PATH = os.path.join(HERE, "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "patch")
_INT = re.compile(r"^-?[0-9]+$")


class ContractError(Exception):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


class Operation:
    def __init__(self, contract, method, path, spec, path_params):
        self.contract = contract
        self.method = method.upper()
        self.path = path
        self.id = spec["operationId"]
        self.spec = spec
        params = {}
        for p in list(path_params) + list(spec.get("parameters", [])):
            p = contract.resolve(p)
            params[(p["in"], p["name"])] = p
        self.params = params
        self.body_media = None
        self.body_validator = None
        body = spec.get("requestBody")
        if body:
            body = contract.resolve(body)
            self.body_required = body.get("required", False)
            media, content = next(iter(body["content"].items()))
            self.body_media = media
            if media == "application/json":
                self.body_validator = contract.validator(content["schema"])

    def check_path(self, values):
        for name, value in values.items():
            p = self.params.get(("path", name))
            if p is None:
                continue
            problem = first_error(self.contract.validator(p["schema"]), value)
            if problem:
                raise ContractError(name, "invalid path parameter %r: %s" % (name, problem[1]))

    def check_query(self, query):
        """Query parameters coerced to their declared types; unknown or repeated names rejected."""
        out = {}
        for name in query.keys():
            if ("query", name) not in self.params:
                raise ContractError(name, "unknown query parameter %r" % name)
            if len(query.getlist(name)) != 1:
                raise ContractError(name, "query parameter %r given more than once" % name)
        for (where, name), p in self.params.items():
            if where != "query":
                continue
            schema = self.contract.resolve(p["schema"])
            if name not in query:
                if p.get("required"):
                    raise ContractError(name, "missing required query parameter %r" % name)
                if "default" in schema:
                    out[name] = schema["default"]
                continue
            raw = query[name]
            value = raw
            if schema.get("type") == "integer":
                if not _INT.match(raw):
                    raise ContractError(name, "query parameter %r must be an integer" % name)
                value = int(raw)
            problem = first_error(self.contract.validator(schema), value)
            if problem:
                raise ContractError(name, "invalid query parameter %r: %s" % (name, problem[1]))
            out[name] = value
        return out

    def check_body(self, body):
        if self.body_validator is None:
            return
        problem = first_error(self.body_validator, body)
        if problem:
            raise ContractError(problem[0], problem[1])

    def response_schema(self, status):
        resp = self.spec.get("responses", {}).get(str(status))
        if resp is None:
            return None
        resp = self.contract.resolve(resp)
        content = resp.get("content", {})
        if "application/json" not in content:
            return None
        return content["application/json"]["schema"]


class Contract:
    def __init__(self, path=OPENAPI_PATH):
        with open(path) as f:
            # the C loader when PyYAML has it: start-up and tests load this often
            self.doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        self._validators = {}
        self.operations = {}
        for p, item in self.doc["paths"].items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method in item:
                    op = Operation(self, method, p, item[method], shared)
                    self.operations[(op.method, p)] = op

    def resolve(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            node = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def validator(self, schema):
        # OpenAPI 3.0 schemas as written here are draft-4 JSON Schema; refs resolve against
        # a root that carries the document's components.
        key = id(schema)
        v = self._validators.get(key)
        if v is None:
            root = dict(schema)
            root["components"] = self.doc["components"]
            v = jsonschema.Draft4Validator(root)
            self._validators[key] = v
        return v

    def operation(self, method, path):
        return self.operations[(method.upper(), path)]
