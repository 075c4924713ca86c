"""What a new password must be: long enough, not common or easily guessed, not the username.

"Easily guessed" is zxcvbn's judgement (the Dropbox estimator, its Python port): it knows the
common-password lists (30,000 of them), English words, names, keyboard walks, dates, repeats
and l33t spellings, and says how many guesses a password would take. Below score 3 (about 10^8
guesses) is refused, as OWASP ASVS 5.0 (6.2.4, 6.2.12) and NIST SP 800-63B 3.1.1.2 ask.
"""

import unicodedata
from typing import Literal

import anyio
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_SCORE = 3
# zxcvbn judges at most 72 characters (its time grows with the length); a longer password is
# judged on its start: the rest only adds guesses.
ESTIMATED_CHARACTERS = 72


PasswordRefusal = Literal["too_short", "too_long", "contains_username", "common"]


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _guessable(password: str, username: str) -> bool:
    return int(zxcvbn(password[:ESTIMATED_CHARACTERS], user_inputs=[username])["score"]) < MIN_SCORE


async def refusal_of(password: str, username: str) -> PasswordRefusal | None:
    """Why `password` may not be this user's new password, or None when it may."""
    if len(password) < MIN_LENGTH:
        return "too_short"
    if len(password) > MAX_LENGTH:
        return "too_long"
    # A name of one or two characters is in most passwords by chance, not as a guess.
    if len(username) >= 3 and _folded(username) in _folded(password):
        return "contains_username"
    # A few milliseconds of CPU: in a thread, so the event loop never stalls.
    if await anyio.to_thread.run_sync(_guessable, password, username):
        return "common"
    return None
