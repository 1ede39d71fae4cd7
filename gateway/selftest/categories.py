"""The content categories the UK Safer Internet Centre expects a school filter to cover (illegal content apart: it
is the IWF/CTIRU slot, checked on its own), plus the DfE's ways round the filter."""

from __future__ import annotations

import enum


class SelftestCategory(enum.StrEnum):
    DISCRIMINATION = "discrimination"
    DRUGS = "drugs"
    EXTREMISM = "extremism"
    GAMBLING = "gambling"
    MALWARE = "malware_hacking"
    PORNOGRAPHY = "pornography"
    PIRACY = "piracy"
    SELF_HARM = "self_harm"
    VIOLENCE = "violence"
    CIRCUMVENTION = "circumvention"

    @property
    def label(self) -> str:
        return TITLES[self]


TITLES = {
    SelftestCategory.DISCRIMINATION: "Discrimination and hate speech",
    SelftestCategory.DRUGS: "Drugs and substance abuse",
    SelftestCategory.EXTREMISM: "Extremism",
    SelftestCategory.GAMBLING: "Gambling",
    SelftestCategory.MALWARE: "Malware and hacking",
    SelftestCategory.PORNOGRAPHY: "Pornography",
    SelftestCategory.PIRACY: "Piracy and copyright theft",
    SelftestCategory.SELF_HARM: "Self-harm (including eating disorders)",
    SelftestCategory.VIOLENCE: "Violence",
    SelftestCategory.CIRCUMVENTION: "VPNs, proxies and other ways round the filter",
}
