"""mfa's code step on the real Postgres: the statements each sign-in route sends, and that the
one statement which accepts a code lets exactly one of two racing verifies through."""

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pyotp

from services.common.clock import FrozenClock
from services.common.keys import SigningKey, generate_private_pem
from services.common.step_tokens import ConsumedStepTokens, PostgresConsumedStepTokens
from services.common.tokens import PeerKeys, StaticKeys, TokenIssuer, TokenVerifier
from services.common.web import Pages
from services.mfa.app import create_app
from services.mfa.audit import AuditTrail
from services.mfa.enrollment import Enrollment
from services.mfa.login_step import LoginSteps
from services.mfa.recovery_codes import RecoveryCodeHasher, RecoveryCodes, recovery_code_key
from services.mfa.secret_box import SecretBox
from services.mfa.settings import Settings
from services.mfa.state import MfaState
from services.mfa.store import AuditEvent, MfaStore, UsedStep
from services.mfa.tests.fakes import FakeThrottle
from services.mfa.tests.test_routes import AUTHZ, BINDING, BROWSER_ID, CSRF, MFA_PEM
from services.mfa.totp import TotpVerifier

from .schemas import migrated_pool

MIGRATIONS = Path(__file__).parent.parent / "services" / "mfa" / "migrations"
USER_ID, USERNAME = "user-alice", "alice"


@dataclass
class Mfa:
    client: httpx.AsyncClient
    store: MfaStore
    clock: FrozenClock
    auth: TokenIssuer
    secret: str
    # Every statement the pool sent, in order.
    sent: list[str]

    def otp_step(self) -> str:
        claims = {
            "stage": "otp",
            "bnd": BINDING,
            "authz": AUTHZ,
            "sub": USER_ID,
            "preferred_username": USERNAME,
            "account": USERNAME,
            "amr": ["pwd"],
        }
        return self.auth.issue("mfa", 600, claims)

    def code(self, steps: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(self.clock.now() + steps * 30)

    def cookies(self, step: str) -> dict[str, str]:
        # Per request, not the client's jar: racing requests carry steps of their own.
        return {"cookie": f"browser={BROWSER_ID}; login_step={step}"}

    async def get(self, step: str) -> httpx.Response:
        return await self.client.get("/mfa/", headers=self.cookies(step))

    async def verify(self, step: str, code: str) -> httpx.Response:
        return await self.client.post(
            "/mfa/verify", data={"csrf_token": CSRF, "code": code}, headers=self.cookies(step)
        )


async def log_statements(pool: asyncpg.Pool, size: int, sent: list[str]) -> None:
    # The pool keeps its connections (no reset, no expiry here): a logger on each counts them all.
    held = [await pool.acquire() for _ in range(size)]
    for connection in held:
        connection.add_query_logger(lambda record: sent.append(record.query))
    for connection in held:
        await pool.release(connection)


@asynccontextmanager
async def mfa_on_postgres(tmp_path: Path, connections: int) -> AsyncIterator[Mfa]:
    async with migrated_pool(
        "mfa_statements", MIGRATIONS, min_size=connections, max_size=connections
    ) as pool:
        sent: list[str] = []
        await log_statements(pool, connections, sent)
        clock = FrozenClock()
        store = MfaStore(pool)
        auth_key = SigningKey.from_pem(generate_private_pem("ec"))
        key_file = tmp_path / "mfa.pem"
        key_file.write_bytes(MFA_PEM)
        settings = Settings(
            signing_key_file=key_file,
            encryption_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        )
        box = SecretBox(settings.encryption_key_bytes())
        secret = pyotp.random_base32()
        await store.confirm_enrollment(USER_ID, box.seal(USER_ID, secret), used_step=0)
        throttle = FakeThrottle(max_failures=100)

        @asynccontextmanager
        async def state_on_postgres(
            settings: Settings, pages: Pages, signing_key: SigningKey
        ) -> AsyncIterator[MfaState]:
            verifier = TokenVerifier(
                PeerKeys({"auth": StaticKeys({"keys": [auth_key.public_jwk()]})}),
                {"auth"},
                "mfa",
                clock=clock,
            )
            yield MfaState(
                settings,
                pages,
                Enrollment(store, box, TotpVerifier("Orange Business"), clock, throttle),
                LoginSteps(
                    TokenIssuer(signing_key, "mfa", clock),
                    verifier,
                    ConsumedStepTokens(PostgresConsumedStepTokens(pool), clock),
                    600,
                    store,
                    clock,
                ),
                AuditTrail(store, clock),
                RecoveryCodes(
                    store,
                    RecoveryCodeHasher(recovery_code_key(settings.encryption_key_bytes())),
                    box,
                    clock,
                    throttle,
                ),
            )

        app = create_app(settings, state_opener=state_on_postgres)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield Mfa(client, store, clock, TokenIssuer(auth_key, "auth", clock), secret, sent)


async def consumed_jtis(mfa: Mfa) -> list[str]:
    return [
        row["jti"] for row in await mfa.store.pool.fetch("SELECT jti FROM consumed_step_token ORDER BY jti")
    ]


async def audit_outcomes(mfa: Mfa) -> list[str]:
    return [row["outcome"] for row in await mfa.store.audit_rows(USER_ID) if row["event"] == "sign_in.otp"]


async def warm_up(mfa: Mfa) -> None:
    """One sign-in first: asyncpg looks up a type (bigint[], ...) once per connection, not per request."""
    step = mfa.otp_step()
    assert (await mfa.get(step)).status_code == 200
    assert (await mfa.verify(step, mfa.code())).status_code == 303
    mfa.clock.advance(30)


async def test_the_code_page_takes_one_statement_and_a_right_code_two(tmp_path: Path) -> None:
    async with mfa_on_postgres(tmp_path, connections=1) as mfa:
        await warm_up(mfa)
        step = mfa.otp_step()
        mfa.sent.clear()
        page = await mfa.get(step)
        assert page.status_code == 200 and 'action="/mfa/verify"' in page.text
        assert len(mfa.sent) == 1, mfa.sent

        mfa.sent.clear()
        signed_in = await mfa.verify(step, mfa.code())
        assert signed_in.status_code == 303, signed_in.text[:300]
        assert signed_in.headers["location"] == "/auth/login/complete"
        # The step's records in one SELECT; the used step, its audit row and the step token's
        # consumption in one more.
        assert len(mfa.sent) == 2, mfa.sent
        assert await audit_outcomes(mfa) == ["ok", "ok"]

        # The step token is spent: refused before any code is checked.
        mfa.clock.advance(30)
        replay = await mfa.verify(step, mfa.code())
        assert replay.status_code == 400


async def test_a_wrong_code_takes_two_statements_and_spends_nothing(tmp_path: Path) -> None:
    async with mfa_on_postgres(tmp_path, connections=1) as mfa:
        await warm_up(mfa)
        step = mfa.otp_step()
        wrong = "000000" if mfa.code() != "000000" else "111111"
        mfa.sent.clear()
        refused = await mfa.verify(step, wrong)
        assert refused.status_code == 401
        assert len(mfa.sent) == 2, mfa.sent  # the records, the audit row
        assert (await mfa.verify(step, mfa.code())).status_code == 303


async def test_the_same_code_with_two_steps_at_once_signs_in_once(tmp_path: Path) -> None:
    async with mfa_on_postgres(tmp_path, connections=2) as mfa:
        code = mfa.code()
        answers = await asyncio.gather(mfa.verify(mfa.otp_step(), code), mfa.verify(mfa.otp_step(), code))
        assert sorted(answer.status_code for answer in answers) == [303, 401]
        refused = next(answer for answer in answers if answer.status_code == 401)
        assert "already been used" in refused.text
        assert sorted(await audit_outcomes(mfa)) == ["ok", "replayed"]


async def test_one_step_with_two_right_codes_at_once_signs_in_once(tmp_path: Path) -> None:
    async with mfa_on_postgres(tmp_path, connections=2) as mfa:
        step = mfa.otp_step()
        answers = await asyncio.gather(mfa.verify(step, mfa.code(-1)), mfa.verify(step, mfa.code()))
        statuses = sorted(answer.status_code for answer in answers)
        # The loser either finds its TOTP step used (401) or the step token consumed (400).
        assert statuses in ([303, 400], [303, 401]), statuses


def audit_row(outcome: str) -> AuditEvent:
    return AuditEvent(datetime.now(UTC), USER_ID, USERNAME, "sign_in.otp", outcome, "127.0.0.1", "test")


async def test_a_step_token_consumed_meanwhile_accepts_no_code(tmp_path: Path) -> None:
    async with mfa_on_postgres(tmp_path, connections=1) as mfa:
        now = datetime.now(UTC)
        kept_until = now + timedelta(minutes=10)
        first = await mfa.store.record_used_step(
            USER_ID,
            10,
            audit_row("ok"),
            refused_outcome="replayed",
            step_token=("jti-1", kept_until),
            now=now,
        )
        assert first is UsedStep.ACCEPTED
        # A later TOTP step, but the same step token: the step went on already.
        again = await mfa.store.record_used_step(
            USER_ID,
            11,
            audit_row("ok"),
            refused_outcome="replayed",
            step_token=("jti-1", kept_until),
            now=now,
        )
        assert again is UsedStep.STEP_CONSUMED
        # The same TOTP step with a fresh step token: the code was used.
        replayed = await mfa.store.record_used_step(
            USER_ID,
            11,
            audit_row("ok"),
            refused_outcome="replayed",
            step_token=("jti-2", kept_until),
            now=now,
        )
        assert replayed is UsedStep.STEP_USED
        # Outside sign-in (the Security page's renew) no step token is consumed.
        renewed = await mfa.store.record_used_step(
            USER_ID, 12, audit_row("ok"), refused_outcome="replayed", step_token=None, now=now
        )
        assert renewed is UsedStep.ACCEPTED
        assert await audit_outcomes(mfa) == ["ok", "replayed", "replayed", "ok"]
        consumed = await consumed_jtis(mfa)
        assert "jti-1" in consumed and "jti-2" not in consumed
