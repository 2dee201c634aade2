"""The emergency path in units: the state machine on virtual time (no clock, no sleep),
the words it takes for a call for help, the alert's text, the notifier's retries
against a real local webhook and a real command, and the ``[emergency]`` settings."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from server.agents.notify import (
    CommandContact,
    EmergencyNotifier,
    NotifyAttempt,
    NotifyOptions,
    WebhookContact,
    payload,
)
from server.config import load_settings
from server.engine.emergency import (
    Alert,
    AlertLocation,
    EmergencyMachine,
    EmergencyOptions,
    Line,
    Notify,
    Remember,
    Say,
    State,
    Step,
    StopWaiting,
    Trigger,
    alert_message,
    calls_for_help,
)
from server.engine.emergency_phrases import lexicon
from server.modes import ModeDataError, use_modes
from server.modes.emergency import MESSAGE_FIELDS, PATTERN_KEYS
from server.modes.loader import load
from tests.fakes import LocalHTTP
from tests.fakes import LocalHTTPReply as Reply

ROOT = Path(__file__).resolve().parents[1]


def _said(step: Step) -> list[Line]:
    return [e.line for e in step.effects if isinstance(e, Say)]


def _notify(step: Step) -> Notify | None:
    return next((e for e in step.effects if isinstance(e, Notify)), None)


# ------------------------------------------------------------------ the words


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("help", "en"),
        ("Help!", "en"),
        ("Help, I fell down.", "en"),
        ("help i fell down", "en"),  # ASR without punctuation
        ("Help me!", "en"),
        ("Please help.", "en"),
        ("Somebody help me!", "en"),
        ("I need help.", "en"),
        ("Help, help!", "en"),
        ("Call for help.", "en"),
        ("Can you call for help?", "en"),
        ("I fell.", "en"),
        ("Oh no, I fell", "en"),
        ("I’ve fallen and I can’t get up", "en"),
        ("I fell down the stairs", "en"),
        ("Call an ambulance!", "en"),
        ("I'm hurt.", "en"),
        ("Hilfe!", "de"),
        ("Ich bin gestürzt.", "de"),
        ("ich bin gesturzt", "de"),  # ASR drops the umlaut
        ("Ruf einen Krankenwagen!", "de"),
        ("Help!", "de"),  # English works in every session
        ("¡Ayuda!", "es"),
        ("Me caí.", "es"),
        ("me cai", "es"),
        ("Necesito ayuda.", "es"),
    ],
)
def test_calls_for_help(text, language):
    assert calls_for_help(text, language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("can you help me find the door", "en"),
        ("Can you help me read this sign?", "en"),
        ("Help me find the exit.", "en"),
        ("I need help finding the bus stop.", "en"),
        ("I fell asleep on the bus yesterday.", "en"),
        ("Where is the emergency exit?", "en"),
        ("What's the number of the help desk?", "en"),
        ("Is this helpful?", "en"),
        ("Kannst du mir helfen, die Tür zu finden?", "de"),
        ("Wo ist der Notausgang?", "de"),
        ("¿Me ayudas a encontrar la puerta?", "es"),
    ],
)
def test_ordinary_questions_do_not_call_for_help(text, language):
    assert not calls_for_help(text, language)


# ------------------------------------------------------------------ the machine


def _asking(at: float = 10.0, **options: object) -> EmergencyMachine:
    m = EmergencyMachine(EmergencyOptions(**options))  # type: ignore[arg-type]
    step = m.user_said("Help, I fell down.", at)
    assert m.state is State.ASKING and step.handled
    return m


def test_help_then_no_answer_notifies_at_the_deadline():
    m = EmergencyMachine(EmergencyOptions(ask_timeout_s=20))
    step = m.user_said("Help, I fell down.", 10.0)
    assert step.handled and step.deadline == 30.0 and m.state is State.ASKING
    ask = step.effects[0]
    assert isinstance(ask, Say) and ask.line is Line.ASK and ask.urgent
    assert ask.text.startswith("Are you OK?")
    assert any(isinstance(e, Remember) for e in step.effects)  # the model is told
    assert step.trace == ("emergency: idle → asking (the user called for help)",)

    assert m.check(29.9) == Step()  # not yet
    step = m.check(30.0)
    assert m.state is State.NOTIFYING
    assert isinstance(step.effects[0], StopWaiting)
    assert _said(step) == [Line.CALLING]
    assert _notify(step) == Notify(Trigger.USER, confirmed=False, waited_s=20)
    assert step.trace == ("emergency: asking → notifying (no answer in time)",)

    step = m.delivered(30.4)
    assert m.state is State.NOTIFIED and _said(step) == [Line.CALLED]
    assert step.trace == ("emergency: notifying → notified (a contact got the alert)",)
    assert m.check(60.0) == Step()  # the timer is spent


@pytest.mark.parametrize(
    "answer", ["I'm fine", "I'm OK.", "cancel", "No, I'm fine.", "OK", "im fine"]
)
def test_im_fine_in_the_window_cancels_and_nothing_is_sent(answer):
    m = _asking(ask_timeout_s=20)
    step = m.user_said(answer, 15.0)
    assert m.state is State.IDLE and step.handled
    assert isinstance(step.effects[0], StopWaiting)
    say = next(e for e in step.effects if isinstance(e, Say))
    assert say.line is Line.CANCELLED and not say.urgent
    assert step.trace == ("emergency: asking → idle (the user is fine)",)
    assert _notify(m.check(31.0)) is None and m.state is State.IDLE


@pytest.mark.parametrize("answer", ["Yes, help!", "help", "No.", "I'm not OK", "call them"])
def test_a_confirming_answer_notifies_at_once(answer):
    m = _asking()
    step = m.user_said(answer, 12.0)
    assert m.state is State.NOTIFYING and step.handled
    assert _notify(step) == Notify(Trigger.USER, confirmed=True, waited_s=20.0)


def test_a_bare_yes_is_asked_back_and_the_deadline_stands():
    m = _asking(ask_timeout_s=20)
    step = m.user_said("Yes.", 12.0)
    assert _said(step) == [Line.CLARIFY] and step.handled and m.state is State.ASKING
    assert step.deadline is None and m.deadline == 30.0
    assert _notify(m.check(30.0)) is not None


def test_other_words_while_asking_go_on_to_the_model_and_the_clock_runs():
    m = _asking()
    step = m.user_said("What's in front of me?", 12.0)
    assert not step.handled and m.state is State.ASKING and not step.effects
    assert step.trace == ("emergency: asking; the user said something else",)


def test_the_echo_of_its_own_question_is_not_an_answer():
    m = _asking()
    step = m.user_said("I will call for help unless you say I'm fine", 11.0)
    assert step.handled and m.state is State.ASKING and not step.effects


def test_an_ordinary_question_is_left_alone():
    m = EmergencyMachine()
    assert m.user_said("can you help me find the door", 5.0) == Step()
    assert m.state is State.IDLE


def test_the_model_reporting_a_fall_asks_and_the_words_go_on():
    m = EmergencyMachine(EmergencyOptions(ask_timeout_s=20))
    assert m.model_said("The door is on your left.", 1.0) == Step()
    step = m.model_said("You seem to have fallen. Are you OK?", 2.0)
    assert m.state is State.ASKING and _said(step) == [Line.ASK] and not step.handled
    notify = _notify(m.check(22.0))
    assert notify == Notify(Trigger.MODEL, confirmed=False, waited_s=20)


def test_a_fall_signal_asks():
    m = EmergencyMachine()
    step = m.fall_detected(3.0)
    assert m.state is State.ASKING and _said(step) == [Line.ASK]
    assert step.trace == ("emergency: idle → asking (a fall was detected)",)
    assert m.fall_detected(4.0).trace == ("emergency: asking; a fall was detected again",)


def test_after_an_incident_the_model_is_not_heard_again_for_a_while_but_the_user_is():
    m = _asking(at=0.0)
    m.user_said("I'm fine", 5.0)
    step = m.model_said("It looks like you fell.", 30.0)
    assert m.state is State.IDLE and not step.effects and step.trace
    assert m.model_said("It looks like you fell.", 70.0).effects  # re-armed
    m = _asking(at=0.0)
    m.user_said("I'm fine", 5.0)
    assert m.user_said("Help!", 6.0).handled and m.state is State.ASKING


def test_a_failed_try_is_said_once_then_the_outcome():
    m = _asking()
    m.check(30.0)
    assert _said(m.attempt_failed(30.1, retrying=True)) == [Line.RETRYING]
    assert _said(m.attempt_failed(32.1, retrying=True)) == []  # said once an incident
    assert _said(m.delivered(36.0)) == [Line.CALLED]
    assert m.state is State.NOTIFIED


def test_every_contact_failing_is_said():
    m = _asking()
    m.check(30.0)
    m.attempt_failed(30.1, retrying=False)
    step = m.gave_up(30.2)
    assert m.state is State.UNREACHABLE and _said(step) == [Line.UNREACHABLE]
    assert step.trace == ("emergency: notifying → unreachable (no contact could be reached)",)
    # "help" again starts over: asked, then sent again.
    assert m.user_said("help", 40.0).handled and m.state is State.ASKING


def test_help_while_notifying_reassures():
    m = _asking()
    m.check(30.0)
    step = m.user_said("Help!", 30.5)
    assert step.handled and _said(step) == [Line.CALLING] and m.state is State.NOTIFYING


def test_german_session_speaks_german_and_understands_alles_gut():
    m = EmergencyMachine(EmergencyOptions(language="de"))
    step = m.user_said("Hilfe, ich bin hingefallen!", 1.0)
    assert isinstance(step.effects[0], Say) and step.effects[0].text.startswith("Geht es dir gut?")
    m.user_said("Alles gut.", 3.0)
    assert m.state is State.IDLE


def test_spanish_session_cancels_with_estoy_bien_but_not_with_no_estoy_bien():
    m = EmergencyMachine(EmergencyOptions(language="es"))
    m.user_said("¡Socorro!", 1.0)
    m.user_said("No estoy bien.", 2.0)
    assert m.state is State.NOTIFYING
    m = EmergencyMachine(EmergencyOptions(language="es-MX"))
    m.user_said("ayuda", 1.0)
    m.user_said("Estoy bien", 2.0)
    assert m.state is State.IDLE


# ------------------------------------------------------------------ the alert


LOC = AlertLocation(52.520008, 13.404954, 8.0, 3.4)


def test_the_message_says_what_happened_and_where():
    text = alert_message(Notify(Trigger.USER, False, 20.0), LOC, "en")
    assert "asked for help" in text and "did not answer" in text and "20 s" in text
    assert "52.52001, 13.40495" in text and "±8 m" in text and "3 s ago" in text
    assert "openstreetmap.org/?mlat=52.52001&mlon=13.40495" in text
    assert alert_message(Notify(Trigger.MODEL, True, 20.0), None, "en").endswith(
        "Location unknown."
    )
    assert "Standort" in alert_message(Notify(Trigger.FALL, False, 20.0), LOC, "de")


def _alert(frame: bytes | None = None, location: AlertLocation | None = LOC) -> Alert:
    return Alert(
        time_s=1_700_000_000.0,
        message="The person wearing Murmur glasses asked for help.",
        session_id="s1",
        trigger=Trigger.USER,
        confirmed=False,
        location=location,
        frame=frame,
    )


def test_payload_holds_time_location_message_session_and_the_frame_only_if_given():
    body = payload(_alert())
    assert body["time"] == "2023-11-14T22:13:20+00:00"
    assert body["location"] == {"lat": 52.520008, "lon": 13.404954, "accuracy_m": 8.0, "age_s": 3.4}
    assert body["session_id"] == "s1" and body["trigger"] == "user" and "frame" not in body
    assert payload(_alert(frame=b"\xff\xd8jpeg"))["frame"] == "/9hqcGVn"
    assert payload(_alert(location=None))["location"] is None
    json.dumps(body)  # it is JSON


class _Waits:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_a_webhook_failing_twice_is_retried_with_growing_waits():
    sleep = _Waits()
    seen: list[NotifyAttempt] = []

    async def report(a: NotifyAttempt) -> None:
        seen.append(a)

    async with LocalHTTP("/hook/secret-token") as hook:
        hook.replies.extend([Reply(status=503), Reply(status=500), Reply({})])
        notifier = EmergencyNotifier(
            [WebhookContact(f"{hook.base}/hook/secret-token")],
            NotifyOptions(retries=3, backoff_s=2.0),
            sleep=sleep,
        )
        assert await notifier.notify(_alert(), report)
    assert len(hook.requests) == 3 and hook.requests[0]["location"]["lat"] == 52.520008
    assert sleep.waits == [2.0, 4.0]
    assert [(a.ok, a.retry_in_s) for a in seen] == [(False, 2.0), (False, 4.0), (True, None)]
    assert seen[0].contact == f"webhook 127.0.0.1:{hook.port}"  # never the path (a token)
    assert "503" in seen[0].error and "secret-token" not in seen[0].error


async def test_a_permanent_failure_is_not_retried_and_a_hang_times_out():
    seen: list[NotifyAttempt] = []

    async def report(a: NotifyAttempt) -> None:
        seen.append(a)

    async with LocalHTTP("/hook") as hook:
        hook.replies.extend([Reply(status=404), Reply(hang=True), Reply(status=500)])
        notifier = EmergencyNotifier(
            [WebhookContact(f"{hook.base}/hook")], NotifyOptions(retries=5), sleep=_Waits()
        )
        assert not await notifier.notify(_alert(), report)
        assert len(hook.requests) == 1 and not seen[0].retrying
        seen.clear()
        notifier = EmergencyNotifier(
            [WebhookContact(f"{hook.base}/hook")],
            NotifyOptions(retries=1, timeout_s=0.2),
            sleep=_Waits(),
        )
        assert not await notifier.notify(_alert(), report)
    assert seen[0].error == "no answer within 0.2 s"
    assert [a.retrying for a in seen] == [True, False]


async def test_a_command_contact_gets_the_alert_as_arguments_and_environment(tmp_path):
    out = tmp_path / "alert.json"
    script = tmp_path / "notify.py"
    script.write_text(
        "import json, os, sys\n"
        f"open({str(out)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], "
        "'lat': os.environ['MURMUR_ALERT_LAT'], 'json': os.environ['MURMUR_ALERT_JSON']}))\n"
    )
    contact = CommandContact([sys.executable, str(script), "{message}", "{lat},{lon}", "{time}"])
    notifier = EmergencyNotifier([contact], sleep=_Waits())

    async def report(a: NotifyAttempt) -> None:
        assert a.ok, a.error

    assert await notifier.notify(_alert(), report)
    got = json.loads(out.read_text())
    assert got["argv"] == [
        "The person wearing Murmur glasses asked for help.",
        "52.520008,13.404954",
        "2023-11-14T22:13:20+00:00",
    ]
    assert got["lat"] == "52.520008" and json.loads(got["json"])["session_id"] == "s1"


async def test_a_missing_command_is_a_permanent_failure():
    seen: list[NotifyAttempt] = []

    async def report(a: NotifyAttempt) -> None:
        seen.append(a)

    notifier = EmergencyNotifier([CommandContact(["/nonexistent/notify-me"])], sleep=_Waits())
    assert not await notifier.notify(_alert(), report)
    assert len(seen) == 1 and not seen[0].retrying
    assert "[emergency] command" in seen[0].error


# ------------------------------------------------------------------ the words as data


@pytest.fixture
def modes_file(tmp_path):
    """Put a user's modes file in force; the shipped modes are back afterwards."""

    def write(text: str) -> Path:
        path = tmp_path / "my-modes.toml"
        path.write_text(text, encoding="utf-8")
        use_modes(path)
        return path

    yield write
    use_modes()


def test_the_words_are_the_mode_data_and_name_every_line():
    data = load()
    assert set(data.emergency) >= {"en", "de", "es"}
    for words in data.emergency.values():
        assert set(words.lines) == {line.value for line in Line}
        assert set(words.messages) == set(MESSAGE_FIELDS) >= {t.value for t in Trigger}
    assert data.modes["blind"].fall_from_frames
    assert not any(data.modes[m].fall_from_frames for m in ("general", "navigation", "shopping"))


def test_a_user_file_overrides_the_words_it_gives(modes_file):
    modes_file(
        "[emergency.en]\n"
        "fine = ['\\bi am grand\\b']\n"
        "[emergency.en.lines]\n"
        'ask = "All right? Say I am grand, or I call for help."\n'
    )
    m = EmergencyMachine(EmergencyOptions(ask_timeout_s=20.0))
    assert _said(m.user_said("help", 1.0)) == [Line.ASK]
    assert lexicon("en").lines[Line.ASK] == "All right? Say I am grand, or I call for help."
    assert lexicon("en").lines[Line.CALLED] == "I have called for help."  # not overridden
    assert m.user_said("I am grand", 2.0).trace == ("emergency: asking → idle (the user is fine)",)
    assert calls_for_help("call an ambulance")  # the other lists stay


def test_a_new_language_in_a_user_file_needs_every_key(modes_file):
    en = load().emergency["en"]
    with pytest.raises(ModeDataError, match=r"\[emergency.fr\] missing anywhere, fine"):
        modes_file("[emergency.fr]\nalone = ['au secours']\n")
    lists = "".join(f"{k} = {list(getattr(en, k))!r}\n" for k in PATTERN_KEYS if k != "alone")
    lines = "".join(f'{k} = "{v}"\n' for k, v in en.lines.items())
    messages = "".join(f'{k} = "{v}"\n' for k, v in en.messages.items())
    modes_file(
        f"[emergency.fr]\nalone = ['au secours']\n{lists}"
        f"[emergency.fr.lines]\n{lines}[emergency.fr.messages]\n{messages}"
    )
    assert calls_for_help("Au secours !", "fr-FR") and calls_for_help("help", "fr")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[emergency.en]\nfine = ['(unclosed']\n", "fine: '(unclosed' is not a regular expression"),
        ("[emergency.de]\nanywhere = ['ich bin gestürzt']\n", "has accents"),
        ("[emergency.en]\nfine = 'fine'\n", "expected a list of regular expressions"),
        ("[emergency.en]\nfines = ['x']\n", "unknown key 'fines'"),
        ('[emergency.en.lines]\nasks = "x"\n', "lines: unknown key 'asks'"),
        ('[emergency.en.messages]\nno_answer = "after {minutes} min"\n', "may use {waited}"),
        ('[emergency.en.messages]\nlocation = "at {lat:.5q}"\n', "not a usable template"),
    ],
)
def test_wrong_words_stop_the_start_saying_where(tmp_path, text, says):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModeDataError, match=re.escape(says)) as e:
        load(path)
    assert str(path) in str(e.value) and "[emergency." in str(e.value)


# ------------------------------------------------------------------ settings


def test_the_readme_emergency_example_loads(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Emergency\n") :]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    path = tmp_path / "server.toml"
    path.write_text(block.group(1))
    e = load_settings(str(path), env={}).emergency
    assert e.webhooks and e.ask_timeout_s == 20.0 and e.send_frame is False


def test_emergency_settings_from_the_environment():
    env = {"MURMUR_EMERGENCY_WEBHOOKS": "http://a/1, http://b/2", "MURMUR_EMERGENCY_RETRIES": "5"}
    e = load_settings(path=None, env=env).emergency
    assert e.webhooks == ("http://a/1", "http://b/2") and e.retries == 5
