"""A kernel run of a memcg scenario during which other reclaim ran says so in its title."""

from __future__ import annotations

from foliosim.cli.report import backend_title


def test_the_title_names_the_machine_wide_reclaim_that_moved():
    noise = {"pgscan_kswapd": 5}
    obs = {"backend": {"name": "kernel", "release": "6.18.44", "reclaim_noise": noise}}
    assert backend_title(obs) == (
        "kernel (Linux 6.18.44; other reclaim ran meanwhile: pgscan_kswapd 5)"
    )


def test_a_quiet_run_has_the_plain_title():
    assert backend_title({"backend": {"name": "kernel", "release": "6.18.44"}}) == (
        "kernel (Linux 6.18.44)"
    )
