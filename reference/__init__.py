"""High-precision references (mpmath), independent of ``impl``.

Never imports ``impl``: the references are the ground truth the implementation
is measured against.  ``tests/`` and ``tools/`` join the two.
"""

from . import activations as activations
from . import derivatives as derivatives
from . import float64 as float64
from . import float64_derivatives as float64_derivatives
from . import linear as linear
from . import pooling as pooling
from ._convert import FORMATS as FORMATS
from ._convert import Format as Format
from ._convert import round_to_format as round_to_format
from ._convert import to_mpf as to_mpf
from ._ziv import correctly_rounded as correctly_rounded
