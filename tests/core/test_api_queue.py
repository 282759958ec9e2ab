"""One engine for everyone: API requests queue in order, a full queue says so, a client that
leaves stops its reply, and a person's own turn goes before queued API work."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import openai
import pytest

from app.composition import CoreServices
from app.core.api.api_server import ApiServerConfig
from app.core.api.api_workload import ApiActivity
from app.core.api.local_api_service import LocalApiState, api_config
from app.core.chat.chat_events import TurnStarted, TurnWaiting
from app.core.domain.generation import ChatMessage, GenerationRequest, LoadSettings, SamplingSettings
from app.core.engines.engine_events import GenerationFinished, GenerationStarted, ModelLoaded
from app.core.profile.app_paths import AppPaths
from app.core.profile.settings import Settings
from app.core.engines.engine_host import Priority
from tests.api_fixtures import NO_THINKING, ServedModel, serving_endless
from tests.event_recorder import EventRecorder

ENDLESS = {
    "model": "m", "messages": [{"role": "user", "content": "Go on forever"}], "stream": True, **NO_THINKING,
}
SHORT = {"model": "m", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4, **NO_THINKING}


def _short_reply(client: openai.OpenAI):
    return client.chat.completions.create(
        model="m", messages=SHORT["messages"], max_tokens=SHORT["max_tokens"], extra_body=NO_THINKING
    )


class _EndlessStream:
    """A streaming request whose reply never ends by itself, read until its first text."""

    def __init__(self, url: str) -> None:
        self._client = httpx.Client(timeout=60)
        self._response = self._client.send(
            self._client.build_request("POST", f"{url}/chat/completions", json=ENDLESS), stream=True
        )
        self.lines = self._response.iter_lines()
        while '"content":"a' not in next(self.lines):
            pass

    def leave(self) -> None:
        """Closes the connection without reading on, as a client that gives up."""
        self._response.close()
        self._client.close()


def _activity(served: ServedModel) -> EventRecorder:
    recorder = EventRecorder()
    served.server.workload.subscribe(recorder)
    return recorder


def test_a_client_that_disconnects_stops_its_reply_and_frees_the_engine(served_endless: ServedModel) -> None:
    stream = _EndlessStream(served_endless.url)
    stream.leave()
    record = served_endless.wait_for_record(lambda record: record.status == 499)
    assert record.problem.startswith("cancelled")
    assert record.completion_tokens > 0
    reply = _short_reply(served_endless.client)
    assert reply.choices[0].message.content == "abca"


def test_a_non_streamed_request_whose_client_leaves_is_cancelled_too(served_endless: ServedModel) -> None:
    activity = _activity(served_endless)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{served_endless.url}/chat/completions", json={**ENDLESS, "stream": False}, timeout=httpx.Timeout(60, read=0.5)
        )
    record = served_endless.wait_for_record()
    assert record.status == 499 and record.problem.startswith("cancelled")
    assert activity.wait_for(ApiActivity, lambda now: now == ApiActivity(0, 0))


def test_requests_wait_in_order_and_a_full_queue_answers_503_with_retry_after(endless_model) -> None:
    with serving_endless(endless_model, ApiServerConfig(port=0, queue_limit=2)) as served:
        activity = _activity(served)
        running = _EndlessStream(served.url)
        with ThreadPoolExecutor(1) as pool:
            queued = pool.submit(_short_reply, served.client)
            activity.wait_for(ApiActivity, lambda now: now == ApiActivity(running=1, queued=1))
            with pytest.raises(openai.InternalServerError) as refused:
                _short_reply(served.client)
            assert refused.value.status_code == 503
            assert refused.value.response.headers["Retry-After"] == "2"
            assert refused.value.body["code"] == "queue_full"
            running.leave()
            assert queued.result(timeout=60).choices[0].message.content == "abca"


def test_a_person_s_turn_goes_before_api_requests_already_waiting(served_endless: ServedModel) -> None:
    """What starts first is recorded on the engine thread itself, where work starts in order."""
    activity = _activity(served_endless)
    running = _EndlessStream(served_endless.url)
    started: list[str] = []
    both_waiting = threading.Event()
    # (1 running, 0 queued) after the API request queued behind the running one: it has started.
    served_endless.server.workload.subscribe(
        lambda now: started.append("api") if both_waiting.is_set() and now == ApiActivity(1, 0) else None
    )
    with ThreadPoolExecutor(1) as pool:
        queued = pool.submit(_short_reply, served_endless.client)
        activity.wait_for(ApiActivity, lambda now: now == ApiActivity(running=1, queued=1))
        both_waiting.set()
        person = EventRecorder()

        def on_person_event(event) -> None:
            if isinstance(event, GenerationStarted):
                started.append("person")
            person(event)

        request = GenerationRequest(
            (ChatMessage("user", "Me first"),), enable_thinking=False, sampling=SamplingSettings(max_tokens=4)
        )
        served_endless.host.generate(request, Priority.PERSON, on_person_event)
        running.leave()
        person.wait_for(GenerationFinished)
        queued.result(timeout=60)
    assert started == ["person", "api"]


def test_stopping_the_server_ends_open_streams_and_running_replies(endless_model) -> None:
    with serving_endless(endless_model) as served:
        stream = _EndlessStream(served.url)
        served.server.stop()
        assert [line for line in stream.lines if line][-1] == "data: [DONE]"  # the stream ended, it was not cut off
        record = served.wait_for_record()
    assert record.problem.startswith("cancelled") and record.completion_tokens > 0


def test_queued_work_is_counted_while_it_waits_and_once_it_runs(served_endless: ServedModel) -> None:
    activity = _activity(served_endless)
    stream = _EndlessStream(served_endless.url)
    assert served_endless.server.workload.activity == ApiActivity(running=1, queued=0)
    stream.leave()
    activity.wait_for(ApiActivity, lambda now: now == ApiActivity(0, 0))


def test_an_api_request_whose_client_leaves_while_it_waits_never_generates(served_endless: ServedModel) -> None:
    stream = _EndlessStream(served_endless.url)  # the engine is busy until it leaves
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{served_endless.url}/chat/completions", json={**SHORT, "stream": True}, timeout=httpx.Timeout(60, read=0.3)
        )
    stream.leave()
    records = [served_endless.wait_for_record(lambda record: record.completion_tokens == 0)]
    assert records[0].problem.startswith("cancelled")


def test_a_person_s_turn_says_it_waits_while_the_engine_writes_an_api_reply(tmp_path, endless_model) -> None:
    core = CoreServices.start(AppPaths.under(tmp_path), Settings())
    try:
        loaded, states, session = EventRecorder(), EventRecorder(), EventRecorder()
        core.engine.subscribe(loaded)
        core.engine.load_model(endless_model, LoadSettings(context_size=4096))
        loaded.wait_for(ModelLoaded)
        core.api.subscribe(states)
        core.api.apply(api_config(enabled=True, port=0, allow_network=False, api_key="", allowed_origins=()))
        stream = _EndlessStream(states.wait_for(LocalApiState, lambda state: state.running).url)
        core.session.subscribe(session)
        core.session.send("My turn")
        started = session.wait_for(TurnStarted)
        assert session.wait_for(TurnWaiting).message_id == started.reply.id
        stream.leave()
    finally:
        core.shutdown()
