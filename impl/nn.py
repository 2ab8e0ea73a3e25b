"""Layer classes (``impl.nn``), with the constructors of the tutorial."""

from ._activation_layers import *  # noqa: F403  (a class for each row of impl._activations.LAYERS)
from ._module import Module as Module
from ._layers import AvgPool2d as AvgPool2d
from ._layers import Conv2d as Conv2d
from ._layers import Dropout as Dropout
from ._layers import Flatten as Flatten
from ._layers import Linear as Linear
from ._layers import MaxPool2d as MaxPool2d
from ._layers import Sequential as Sequential
from ._norm_layers import BatchNorm1d as BatchNorm1d
from ._norm_layers import BatchNorm2d as BatchNorm2d
from ._norm_layers import BatchNorm3d as BatchNorm3d
from ._norm_layers import GroupNorm as GroupNorm
from ._norm_layers import InstanceNorm1d as InstanceNorm1d
from ._norm_layers import InstanceNorm2d as InstanceNorm2d
from ._norm_layers import InstanceNorm3d as InstanceNorm3d
from ._norm_layers import LayerNorm as LayerNorm
from ._norm_layers import LogSoftmax as LogSoftmax
from ._norm_layers import RMSNorm as RMSNorm
from ._norm_layers import Softmax as Softmax
from ._norm_layers import functional_call as functional_call
