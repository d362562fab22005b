"""Which team takes an escalation: trainers map reasons and intents to teams.

`nlu_data/teams.yml` (``BOT_TEAMS_FILE``) lists the teams, then which team
takes each escalation reason and, for a reason not listed (a plain "a person,
please"), the customer's topic before it, by intent. What maps to no team goes
to `default`; an empty default means anyone on the roster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

MAX_TEAM = 20


class TeamFileError(ValueError):
    """teams.yml names a team it does not list, or is not shaped as documented."""


@dataclass(frozen=True)
class TeamMap:
    teams: tuple[str, ...] = ()
    default: str = ""
    reasons: dict[str, str] = field(default_factory=dict)
    intents: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TeamMap:
        """The map in `path`; no file: no teams (everyone takes everything)."""
        if not path.is_file():
            return cls()
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise TeamFileError(f"{path}: a mapping with teams, default, reasons, intents")
        teams = tuple(str(t) for t in raw.get("teams") or ())
        for team in teams:
            if not team or len(team) > MAX_TEAM:
                raise TeamFileError(f"{path}: a team name is 1 to {MAX_TEAM} characters")
        default = str(raw.get("default") or "")
        maps: dict[str, dict[str, str]] = {}
        for section in ("reasons", "intents"):
            entries = raw.get(section) or {}
            if not isinstance(entries, dict):
                raise TeamFileError(f"{path}: `{section}` maps a name to a team")
            maps[section] = {str(k): str(v) for k, v in entries.items()}
        for team in (default, *maps["reasons"].values(), *maps["intents"].values()):
            if team and team not in teams:
                raise TeamFileError(f"{path}: team {team!r} is not in `teams`")
        return cls(teams, default, maps["reasons"], maps["intents"])

    def team_for(self, reason: str, intent: str = "") -> str:
        """The team that takes an escalation for `reason` about `intent` ('' anyone)."""
        if reason in self.reasons:
            return self.reasons[reason]
        return self.intents.get(intent, self.default)

    def check(self, teams: list[str]) -> list[str]:
        """`teams` if every one is listed in the file (an agent's teams, set by an admin)."""
        unknown = [t for t in teams if t not in self.teams]
        if unknown:
            listed = ", ".join(self.teams) or "none"
            raise TeamFileError(f"unknown team(s) {', '.join(unknown)}; teams.yml lists {listed}")
        return list(dict.fromkeys(teams))
