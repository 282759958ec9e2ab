"""Per-conversation generation settings and the sampling presets from the Qwen3.5 model cards.

A conversation stores its settings as a small dict (``Conversation.generation_settings``); this
module turns that dict into typed settings and back, so old or hand-edited values never break a
conversation: unknown keys are ignored and missing ones take the defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from app.core.domain.generation import SamplingSettings

AUTOMATIC = "automatic"  # follow the model card's preset for the current thinking mode


@dataclass(frozen=True)
class SamplingPreset:
    name: str
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    presence_penalty: float


SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "presence_penalty")  # what a preset sets


def _sampling_values(source) -> dict:
    return {name: getattr(source, name) for name in SAMPLING_FIELDS}


def _card(name: str, sampling: SamplingSettings) -> SamplingPreset:
    return SamplingPreset(name, **_sampling_values(sampling))


# The Qwen3.5 model cards' recommendations (see shared/reference/qwen35.md, "Sampling"); the
# engine's SamplingSettings.for_mode holds the two text presets.
BUILT_IN_PRESETS = (
    _card("Thinking", SamplingSettings.for_mode(thinking=True)),
    _card("Non-thinking", SamplingSettings.for_mode(thinking=False)),
    SamplingPreset("Precise coding", 0.6, 0.95, 20, 0.0, 0.0),
)


def card_preset(*, thinking: bool) -> SamplingPreset:
    return BUILT_IN_PRESETS[0] if thinking else BUILT_IN_PRESETS[1]


@dataclass(frozen=True)
class ChatSettings:
    """How replies in one conversation are generated.

    ``preset`` is AUTOMATIC (the card's preset for the thinking mode in use), the name of a
    built-in or user preset, or "" when the sampling values were set by hand.
    """

    enable_thinking: bool | None = None  # None: the model's own default
    preset: str = AUTOMATIC
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 20
    min_p: float = 0.0
    presence_penalty: float = 2.0
    max_tokens: int = 32768
    tools_enabled: bool = False  # replies may call tools (each call still needs the person's approval)
    tools_switched_off: tuple[str, ...] = ()  # keys ("server/tool") of tools this chat does not offer

    @classmethod
    def from_dict(cls, data: dict | None) -> "ChatSettings":
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in (data or {}).items() if key in known}
        switched_off = values.get("tools_switched_off", ())
        if not isinstance(switched_off, list | tuple) or not all(isinstance(key, str) for key in switched_off):
            switched_off = ()
        values["tools_switched_off"] = tuple(switched_off)
        if not isinstance(values.get("tools_enabled", False), bool):
            values.pop("tools_enabled")
        try:
            return cls(**values)
        except TypeError:
            return cls()

    def as_dict(self) -> dict:
        values = asdict(self)
        values["tools_switched_off"] = list(self.tools_switched_off)
        return values

    def thinking(self, model_default: bool) -> bool:
        return model_default if self.enable_thinking is None else self.enable_thinking

    def with_preset(self, preset: SamplingPreset) -> "ChatSettings":
        return replace(self, preset=preset.name, **_sampling_values(preset))

    def sampling(self, *, thinking: bool, images: bool = False) -> SamplingSettings:
        """The sampler for the next reply; AUTOMATIC picks the card's values for ``thinking``,
        and its vision preset for a non-thinking reply about ``images``."""
        if self.preset == AUTOMATIC:
            return SamplingSettings.for_mode(thinking=thinking, max_tokens=self.max_tokens, images=images)
        return SamplingSettings(max_tokens=self.max_tokens, **_sampling_values(self))
