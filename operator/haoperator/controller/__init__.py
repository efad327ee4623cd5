"""The shell around the core: kopf wiring, informers, the store, the work queue, the one API
layer (kube.py) and the executor that carries plans out."""
