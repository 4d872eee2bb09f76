"""The attention backend registry; backends register themselves with ``@register(name)``."""

from qdsbench.registry import Registry

BACKENDS = Registry("attention backend")


def register(name: str):
    def decorator(cls):
        cls.registered_name = name
        return BACKENDS.register(name)(cls)

    return decorator
