"""The internal API, typed once: every call between services, its request and its answer.

One module per callee (`session`, `auth`, and the admin modules beside them). The callee's
routes and every caller import the same models, so a shape that drifts is a type error, and each
callee has one typed client here. docs/architecture.md's tables are checked against these
endpoints by services/contracts/tests/test_architecture_doc.py.
"""
