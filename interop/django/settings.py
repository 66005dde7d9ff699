"""Django settings for running django-heroku-connect against pgforce: the package's app,
one app of Heroku Connect models whose mapping it exports, and the API endpoint and token
as an app sets them for Heroku (here from the environment run.sh prepares)."""

import os

SECRET_KEY = "interop-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "heroku_connect", "pgforce_app"]
DATABASES = {}
USE_TZ = True
HEROKU_CONNECT_SCHEMA = "salesforce"
HEROKU_CONNECT_API_ENDPOINT = os.environ["HEROKU_CONNECT_API_ENDPOINT"]
HEROKU_AUTH_TOKEN = os.environ["HEROKU_AUTH_TOKEN"]
HEROKU_CONNECT_APP_NAME = os.environ["HEROKU_APP_NAME"]
