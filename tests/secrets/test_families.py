"""Every provider family a leading scanner knows and AssetMon once did not gets a rule, or a written
reason in the rule files why not ([[unsupported]])."""

from __future__ import annotations

import tomllib

import pytest

from app.secrets.rules import builtin_rule_files, load_rules

RULES = load_rules()
IDS = [rule.id for rule in RULES.rules]
UNSUPPORTED = [
    entry for path in builtin_rule_files() for entry in tomllib.loads(path.read_text()).get("unsupported", [])
]

# family -> the id prefixes its rules start with
FAMILIES = {
    "Cloudflare": ("cloudflare-",),
    "Datadog": ("datadog-",),
    "Twitter/X": ("twitter-", "x-"),
    "JFrog": ("jfrog-", "artifactory-"),
    "PlanetScale": ("planetscale-",),
    "Databricks": ("databricks-",),
    "Okta": ("okta-",),
    "Bitbucket": ("bitbucket-",),
    "Airtable": ("airtable-",),
    "Algolia": ("algolia-",),
    "Asana": ("asana-",),
    "Atlassian": ("atlassian-",),
    "Contentful": ("contentful-",),
    "Dropbox": ("dropbox-",),
    "Doppler": ("doppler-",),
    "Dynatrace": ("dynatrace-",),
    "Fastly": ("fastly-",),
    "Fly.io": ("flyio-", "fly-"),
    "Frame.io": ("frameio-",),
    "GoCardless": ("gocardless-",),
    "HubSpot": ("hubspot-",),
    "Intercom": ("intercom-",),
    "LaunchDarkly": ("launchdarkly-",),
    "Linear": ("linear-",),
    "Mattermost": ("mattermost-",),
    "MessageBird": ("messagebird-", "bird-"),
    "Netlify": ("netlify-",),
    "Notion": ("notion-",),
    "NuGet": ("nuget-",),
    "Plaid": ("plaid-",),
    "Postman": ("postman-",),
    "Pulumi": ("pulumi-",),
    "PyPI": ("pypi-",),
    "RubyGems": ("rubygems-",),
    "Sendinblue/Brevo": ("brevo-", "sendinblue-"),
    "Shippo": ("shippo-",),
    "Snyk": ("snyk-",),
    "SonarQube": ("sonarqube-", "sonar-"),
    "Sourcegraph": ("sourcegraph-",),
    "Sumo Logic": ("sumologic-", "sumo-logic-"),
    "Supabase": ("supabase-",),
    "Twitch": ("twitch-",),
    "Typeform": ("typeform-",),
    "Vercel": ("vercel-",),
    "Yandex": ("yandex-",),
    "Zendesk": ("zendesk-",),
    "JSON Web Tokens": ("jwt",),
    "Kubernetes secrets": ("kubernetes-",),
    # token types peers know where AssetMon had a rule for the provider
    "Slack legacy tokens": ("slack-legacy-",),
    "Slack configuration tokens": ("slack-config",),
    "GitLab deploy tokens": ("gitlab-deploy-token",),
    "GitLab runner tokens": ("gitlab-runner-",),
    "GitLab CI job tokens": ("gitlab-ci-job-token", "gitlab-job-token"),
    "GitLab feed tokens": ("gitlab-feed-token",),
    "GitLab SCIM tokens": ("gitlab-scim-",),
    "Discord bot tokens": ("discord-bot-token",),
    "Grafana API keys": ("grafana-api-key",),
    "Grafana Cloud tokens": ("grafana-cloud-",),
    "Mailgun signing keys": ("mailgun-webhook-signing-key", "mailgun-signing-key"),
    "Terraform Cloud tokens": ("terraform-",),
    "Hugging Face organisation tokens": ("huggingface-org",),
    "Sentry user tokens": ("sentry-user-",),
    "Heroku legacy keys": ("heroku-legacy-",),
    "Twilio API key secrets": ("twilio-api-key-secret", "twilio-api-secret"),
}


def test_at_least_250_rules():
    assert len(RULES) >= 250, len(RULES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_a_rule_or_a_reason(family):
    prefixes = FAMILIES[family]
    ruled = [rule_id for rule_id in IDS if rule_id.startswith(prefixes)]
    reasons = [u for u in UNSUPPORTED if family.lower().split("/")[0].split()[0] in str(u.get("family", "")).lower()]
    assert ruled or reasons, f"{family}: no rule starting with {prefixes} and no [[unsupported]] entry"
    assert all(u.get("reason") for u in reasons)


def test_unsupported_entries_say_why():
    for entry in UNSUPPORTED:
        assert entry.get("family") and len(entry.get("reason", "")) > 20, entry
