import base64
import json

from loopbot.core.redact import MASK, Redactor, secrets_from_env

GH = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def test_token_shapes_are_masked_without_knowing_the_values():
    text = (f"token {GH}\nkey=sk-ant-api03-{'x' * 40}\nopenai sk-proj-{'y' * 30}\n"
            f"pat github_pat_{'Z' * 30}\nAuthorization: Bearer abcdefghijklmnopqrstuvwx\n"
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n"
            "jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlc2ln")
    out = Redactor()(text)
    for leaked in (GH, "sk-ant-api03", "sk-proj-", "github_pat_", "abcdefghijklmnop", "MIIEow", "eyJhbGci"):
        assert leaked not in out, leaked
    assert out.count(MASK) >= 7 and "Authorization: Bearer [REDACTED]" in out


def test_exact_values_and_their_encoded_forms():
    secret = "hunter2-but-longer"
    redact = Redactor([secret, "short"])
    assert redact(f"pw is {secret}!") == f"pw is {MASK}!"
    extraheader = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    assert extraheader not in redact(f"AUTHORIZATION: basic {extraheader}")
    assert secret not in redact(json.dumps({"summary": f'said "{secret}"'}))
    assert redact("short stays: too short to be a secret") == "short stays: too short to be a secret"


def test_secret_names_in_the_environment():
    env = {"GITHUB_TOKEN": "ghs_abcdefgh12345678", "ANTHROPIC_API_KEY": "sk-ant-zzzzzzzzzzzz",
           "DB_PASSWORD": "correct horse", "PATH": "/usr/bin:/bin", "MY_AUTH": "x", "HOME": "/root"}
    assert sorted(secrets_from_env(env)) == ["correct horse", "ghs_abcdefgh12345678", "sk-ant-zzzzzzzzzzzz"]
