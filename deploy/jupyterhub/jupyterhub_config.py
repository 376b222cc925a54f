"""JupyterHub for a workshop room on one machine: the self-attention course, nothing to install.

Start it (as root, so that each learner's server runs as their own system user):

    COURSE_HUB_PASSWORD='room password' COURSE_HUB_ROSTER=roster.csv \
    COURSE_HUB_ADMINS=teacher COURSE_HUB_ADMIN_PASSWORD='a long admin password, 32+ chars' \
    .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

then hand out `python -m course_lib hub-link --hub http://<machine>:8000 --repo <learners' copy>`,
the copy that `python -m course_lib hub-publish` makes (lessons and student notebooks, never the
solution masters: the learners' servers run as local users, who can read every file that is
readable by all). Everything is in deploy/jupyterhub/README.md: the three folders (instructor's
checkout 0700, learners' copy, the hub's environment), what to install, accounts, limits, HTTPS,
and moving the same set-up to Zero to JupyterHub. tests/test_hub.py starts the hub with this file
(only the spawner is swapped, see there).

Settings, from the environment (nothing secret is written in this file):

    COURSE_HUB_URL             where the hub listens (default http://:8000, every interface)
    COURSE_HUB_STATE           the hub's database and cookie secret (default /srv/jupyterhub)
    COURSE_HUB_PASSWORD        the room's password for learners (8 characters or more)
    COURSE_HUB_ADMINS          instructors' hub names, comma-separated (they use the admin password)
    COURSE_HUB_ADMIN_PASSWORD  the instructors' password (32 characters or more)
    COURSE_HUB_ROSTER          roster CSV (its `learner` column is the hub name): only these
                               learners may log in; without it anybody with the room password may
    COURSE_HUB_MEM_LIMIT       memory per learner (default 1G; see docs/workshop.md for the measure)
    COURSE_HUB_CPU_LIMIT       cores per learner (default 1)

JupyterHub documentation: https://jupyterhub.readthedocs.io/en/stable/ (configuration reference,
"Authenticators": SharedPasswordAuthenticator, JupyterHub 5.3 and later).
"""

import csv
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub provides get_config when it loads this file)

# The learners' servers run as local users: say so at start if the checkout this file is in keeps
# its solution masters where they can read them (README.md, "One machine": chmod 700).
try:
    from course_lib.hub import masters_warning

    if masters_warning(Path(__file__).resolve().parents[2]):
        print(f"warning: {masters_warning(Path(__file__).resolve().parents[2])}", file=sys.stderr)
except ImportError:  # an environment without course_lib: nothing to check with
    pass

state = Path(os.environ.get("COURSE_HUB_STATE", "/srv/jupyterhub"))
state.mkdir(parents=True, exist_ok=True)
c.JupyterHub.bind_url = os.environ.get("COURSE_HUB_URL", "http://:8000")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server

# Who may log in: one room password (JupyterHub's own SharedPasswordAuthenticator). Anyone who
# knows it can log in as any learner: fine for a workshop, not for an exam; for a graded course
# use your institution's single sign-on (oauthenticator), see README.md.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ.get("COURSE_HUB_PASSWORD")
if os.environ.get("COURSE_HUB_ADMIN_PASSWORD"):
    c.SharedPasswordAuthenticator.admin_password = os.environ["COURSE_HUB_ADMIN_PASSWORD"]
c.Authenticator.admin_users = {
    name.strip() for name in os.environ.get("COURSE_HUB_ADMINS", "").split(",") if name.strip()
}
if os.environ.get("COURSE_HUB_ROSTER"):
    with open(os.environ["COURSE_HUB_ROSTER"], encoding="utf-8-sig", newline="") as roster:
        rows = csv.DictReader(roster)
        c.Authenticator.allowed_users = {
            row["learner"].strip().lower() for row in rows if (row.get("learner") or "").strip()
        }
else:
    c.Authenticator.allow_all = True

# Each learner's server: JupyterLab from this environment (the course's, with nbgitpuller), run
# as the system user of the same name, in their home folder. Create the accounts beforehand
# (README.md: `useradd` from the roster) or use The Littlest JupyterHub, which does it for you.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {"NBGITPULLER_APP": "lab"}
# A kernel idle for 20 minutes is shut down (its notebook stays; Kernel > Restart brings it back):
# a learner who opens every lesson would otherwise hold every lesson's kernel (docs/workshop.md).
c.Spawner.args = [
    "--LabApp.news_url=None",
    "--MappingKernelManager.cull_idle_timeout=1200",
    "--MappingKernelManager.cull_interval=120",
]
c.Spawner.start_timeout = 120  # a small machine starting thirty servers at once
c.Spawner.http_timeout = 120
# Per learner, from the measurement in docs/workshop.md. LocalProcessSpawner only passes these on
# (MEM_LIMIT, CPU_LIMIT in the environment); The Littlest JupyterHub (systemd) and Zero to
# JupyterHub (Kubernetes) enforce them.
c.Spawner.mem_limit = os.environ.get("COURSE_HUB_MEM_LIMIT", "1G")
c.Spawner.cpu_limit = float(os.environ.get("COURSE_HUB_CPU_LIMIT", "1"))
