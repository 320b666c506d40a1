"""lwm2m_edu — firmware updates over the air with LwM2M, as a small real library to learn from.

The package is layered; each layer only imports the ones above it in this list:

* **core, sans-I/O** (no network, no asyncio, no clock):
  ``paths`` (``/5/0/3``), ``model`` (objects and resources as data),
  ``codecs`` (the content formats: text, opaque, CBOR, SenML, TLV, LwM2M CBOR, link-format).

The names most people need are re-exported here::

    import lwm2m_edu as le
    le.Path("/5/0/3").level                      # Level.RESOURCE
    le.DEFAULT_MODEL[5][3].name                  # 'State'
    le.codecs.decode(b"95", le.ContentFormat.TEXT, "/3/0/9")
"""

from . import codecs
from .codecs import CodecError, ContentFormat
from .model import (
    DEFAULT_MODEL,
    Model,
    ModelError,
    ObjectDef,
    ObjectLink,
    Operations,
    ResourceDef,
    ResourceType,
    load_object_xml,
)
from .paths import Level, Path, PathError

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "CodecError",
    "ContentFormat",
    "Level",
    "Model",
    "ModelError",
    "ObjectDef",
    "ObjectLink",
    "Operations",
    "Path",
    "PathError",
    "ResourceDef",
    "ResourceType",
    "__version__",
    "codecs",
    "load_object_xml",
]
