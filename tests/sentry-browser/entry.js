// The Sentry browser SDK as one script for the test page: window.Sentry.
import * as Sentry from "@sentry/browser";
window.Sentry = Sentry;
