from ._abstract import AbstractManifold as AbstractManifold
from ._sphere import Sphere as Sphere
from ._torus import Torus as Torus
