"""The built-in web dashboard: static HTML/CSS/JS modules (``static/``) and the
resource that serves them at ``/ui/`` on the client port (:mod:`.dashboard`).

The page talks only to the JSON gateway and ``/metrics`` that the member already
serves, with the user's own token, so it can do nothing an HTTP client could not.
"""
