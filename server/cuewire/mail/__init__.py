"""Email for identified visitors (the rule action ``email``; docs/integrations.md "Email").

One job a module: ``templates`` (sandboxed email templates, CSS inlined), ``message`` (the
MIME message and its List-Unsubscribe headers), ``smtp`` (sending over aiosmtplib),
``queue`` (the durable send queue in the store), ``timing`` (quiet hours, retry pauses),
``tokens`` (signed unsubscribe links), ``mailer`` (queue on a firing, send the queue, audit)
and ``unsubscribe`` (the link's confirmation page and the one-click endpoint).
"""
