"""Per-conversation generation settings and the model cards' presets."""

from __future__ import annotations

from app.core.chat.chat_settings import AUTOMATIC, BUILT_IN_PRESETS, ChatSettings


def test_automatic_settings_follow_the_model_card_for_the_thinking_mode() -> None:
    settings = ChatSettings()
    thinking = settings.sampling(thinking=True)
    plain = settings.sampling(thinking=False)
    assert (thinking.temperature, thinking.top_p, thinking.top_k, thinking.presence_penalty) == (1.0, 0.95, 20, 1.5)
    assert (plain.temperature, plain.top_p, plain.top_k, plain.presence_penalty) == (1.0, 1.0, 20, 2.0)


def test_a_chosen_preset_is_used_whatever_the_mode() -> None:
    coding = ChatSettings().with_preset(BUILT_IN_PRESETS[2])
    assert coding.preset == "Precise coding"
    sampling = coding.sampling(thinking=True)
    assert (sampling.temperature, sampling.top_p, sampling.presence_penalty) == (0.6, 0.95, 0.0)
    assert coding.sampling(thinking=False) == sampling


def test_settings_round_trip_through_the_stored_dict_and_survive_bad_data() -> None:
    custom = ChatSettings(enable_thinking=False, preset="", temperature=0.3, max_tokens=512)
    assert ChatSettings.from_dict(custom.as_dict()) == custom
    assert ChatSettings.from_dict({"temperature": 0.5, "unknown": 1}).temperature == 0.5
    assert ChatSettings.from_dict(None) == ChatSettings()
    assert ChatSettings.from_dict({"preset": AUTOMATIC}).sampling(thinking=False).max_tokens == 32768


def test_thinking_defaults_to_the_model_unless_set() -> None:
    assert ChatSettings().thinking(model_default=True) is True
    assert ChatSettings(enable_thinking=False).thinking(model_default=True) is False
