"""What operators and stewards do to the hub, once, for every interface.

The command line (``saleshub.commands``), the operator API and the web console
(``saleshub.console``) call these functions; each checks its input, acts, and writes the
operator-action audit trail (``saleshub.store.audit``). Errors are ``SalesHubError``s whose
messages an operator can act on: ``NotFoundError``, ``InvalidRequestError``,
``StateConflictError``, or the mapping load and golden-sample errors of a deploy.
"""
