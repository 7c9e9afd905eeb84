"""The App container (`loopbot serve`): webhooks in, a durable queue, loops dispatched to Actions.

Needs the `app` extra (pip install 'loopbot[app]'). Web side: web.py, settings.py, metrics.py,
serve.py, templates/; the queue, workers and dispatch: store.py, worker.py, dispatch.py.
"""
