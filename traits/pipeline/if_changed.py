"""``--if-changed``: run a dbt-model trait only when dbt rebuilt its model since the trait last ran.

The build time of the model each trait last ran after successfully (any ``traits run`` and the
daemon's runs, with or without ``--if-changed``) is kept in the state store
(``get_value``/``set_value``). dbt's ``run_results.json`` describes only its last invocation: a
model that invocation did not build counts as not rebuilt. Traits on SQL always run.
"""

from __future__ import annotations

from dataclasses import dataclass

from traits.config.dbt import model_build, state_key
from traits.config.models import Config
from traits.state.base import StateStore


@dataclass(frozen=True)
class Decision:
    #: why the trait need not run now; None: run it
    skip: str | None
    #: the model build the run reads (recorded after it succeeds)
    built_at: str | None = None


def decide(config: Config, state: StateStore, name: str) -> Decision:
    """Whether ``name`` needs a run now, and the model build a run would read."""
    trait = config.traits[name]
    if trait.model is None:
        return Decision(None)
    build = model_build(config, name)
    last = state.get_value(state_key(name))
    if build.built_at is None:
        if last is None:
            return Decision(None)  # never ran after a known build: run once for a baseline
        return Decision(f"model {trait.model} was not rebuilt since this trait's last run ({build.why})")
    if build.built_at == last:
        return Decision(f"model {trait.model} was not rebuilt since this trait's last run (dbt built it at {build.built_at})", build.built_at)
    return Decision(None, build.built_at)


def remember(state: StateStore, name: str, decision: Decision) -> None:
    """After a successful run: the model build it ran after."""
    if decision.built_at is not None:
        state.set_value(state_key(name), decision.built_at)
