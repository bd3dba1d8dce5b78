"""softshare: soft parameter-sharing layers and shared Wide ResNets (Savarese & Maire, ICLR 2019)."""

from .evaluate import load
from .inherit import inherit
from .layers import SConv2d, TemplateBank, init_coefficients_orthogonal, parameter_groups
from .learned import learned_plans
from .models import SWRN, ModelConfig, build_model, count_parameters, shared_groups
from .plan import SharingPlan, parse_plan

__all__ = [
    "ModelConfig",
    "SConv2d",
    "SWRN",
    "SharingPlan",
    "TemplateBank",
    "build_model",
    "count_parameters",
    "inherit",
    "learned_plans",
    "init_coefficients_orthogonal",
    "load",
    "parameter_groups",
    "parse_plan",
    "shared_groups",
]
__version__ = "0.1.0"
