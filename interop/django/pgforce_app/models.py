"""Heroku Connect models as an app declares them; django-heroku-connect turns them into a
mapping export document."""

from heroku_connect.db import models as hc_models


class Account(hc_models.HerokuConnectModel):
    sf_object_name = "Account"
    sf_access = hc_models.READ_ONLY

    name = hc_models.Text(sf_field_name="Name", max_length=255)
    industry = hc_models.Text(sf_field_name="Industry", max_length=255, null=True)


class Contact(hc_models.HerokuConnectModel):
    sf_object_name = "Contact"
    sf_access = hc_models.READ_WRITE

    last_name = hc_models.Text(sf_field_name="LastName", max_length=80)
    email = hc_models.Email(sf_field_name="Email", null=True)
