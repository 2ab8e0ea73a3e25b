"""Layer classes (``impl.nn``), with the constructors of the tutorial."""

from ._activation_layers import CELU as CELU
from ._activation_layers import ELU as ELU
from ._activation_layers import GELU as GELU
from ._activation_layers import Hardsigmoid as Hardsigmoid
from ._activation_layers import Hardswish as Hardswish
from ._activation_layers import LeakyReLU as LeakyReLU
from ._activation_layers import LogSigmoid as LogSigmoid
from ._activation_layers import Mish as Mish
from ._activation_layers import ReLU as ReLU
from ._activation_layers import ReLU6 as ReLU6
from ._activation_layers import SELU as SELU
from ._activation_layers import Sigmoid as Sigmoid
from ._activation_layers import SiLU as SiLU
from ._activation_layers import Softplus as Softplus
from ._activation_layers import Softsign as Softsign
from ._activation_layers import Tanh as Tanh
from ._module import Module as Module
from ._layers import AvgPool2d as AvgPool2d
from ._layers import Conv2d as Conv2d
from ._layers import Dropout as Dropout
from ._layers import Flatten as Flatten
from ._layers import Linear as Linear
from ._layers import MaxPool2d as MaxPool2d
from ._layers import Sequential as Sequential
