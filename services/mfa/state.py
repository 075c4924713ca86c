from dataclasses import dataclass

from services.common.web import Pages

from .enrollment import Enrollment
from .login_step import LoginSteps
from .settings import Settings


@dataclass(frozen=True)
class MfaState:
    """What the routes need, made once per process in the app's lifespan."""

    settings: Settings
    pages: Pages
    enrollment: Enrollment
    login_steps: LoginSteps
