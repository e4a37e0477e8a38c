using Microsoft.AspNetCore.Http;

namespace ErrorMonitor;

/// <summary>
/// Options set in code. Each one left null falls back to the configuration key named in its summary
/// (at the configuration root or in an <c>ErrorMonitor</c> section), then to the documented default.
/// </summary>
public sealed class ErrorMonitorOptions
{
    /// <summary>APP_ERROR_ENABLED: false turns capture off. Default true.</summary>
    public bool? Enabled { get; set; }

    /// <summary>APP_ERROR_SEND_NOTIFICATION: send notifications. Default false.</summary>
    public bool? SendNotification { get; set; }

    /// <summary>APP_ERROR_RECIPIENT_EMAIL: recipients of notification emails. Default none.</summary>
    public IList<string>? RecipientEmails { get; set; }

    /// <summary>APP_ERROR_SUBJECT_PREFIX: prefix of notification subjects. Default "".</summary>
    public string? SubjectPrefix { get; set; }

    /// <summary>APP_ERROR_MASK_WITH: the text that replaces masked values. Default "**************".</summary>
    public string? MaskWith { get; set; }

    /// <summary>APP_ERROR_MASKED_KEY_HAS: keys containing one of these (any case) are masked; an empty list
    /// turns the key rule off. Default "password", "secret".</summary>
    public IList<string>? MaskedKeyHas { get; set; }

    /// <summary>
    /// APP_ERROR_MASKED_KEYS: names masked when a key, lower case without '-', '_', '.' and spaces, is one of them
    /// or ends with one (default: token, apikey, auth, authorization, pwd, passwd, session, sessionid, sid, sig,
    /// signature, credentials, credential, privatekey, accesskey, secretkey, jwt, csrf, xsrf, phpsessid); an empty
    /// list turns this rule off.
    /// </summary>
    public IList<string>? MaskedKeys { get; set; }

    /// <summary>APP_ERROR_URL_PREFIX: where the pages are served. Default "/dev/error".</summary>
    public string? UrlPrefix { get; set; }

    /// <summary>APP_ERROR_EMAIL_SENDER: the From address of notification emails. Default none.</summary>
    public string? EmailSender { get; set; }

    /// <summary>APP_DEFAULT_LIST_SIZE: groups a list page. Default 20.</summary>
    public int? DefaultListSize { get; set; }

    /// <summary>APP_ERROR_STORE: "sqlite" (default) or "memory".</summary>
    public string? Store { get; set; }

    /// <summary>APP_ERROR_TABLE: the table name. Default "app_error".</summary>
    public string? TableName { get; set; }

    /// <summary>ConnectionStrings:ErrorMonitor. Default "Data Source=errormonitor.db" in the content root.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>A store of the app's own (the seed's custom model); replaces APP_ERROR_STORE.</summary>
    public IErrorStore? ErrorStore { get; set; }

    /// <summary>APP_ERROR_SMTP_HOST: turns on the built-in email notifier (with SendNotification).</summary>
    public string? SmtpHost { get; set; }

    /// <summary>APP_ERROR_SMTP_PORT. Default 25, 587 or 465 by <see cref="SmtpSecurity"/>.</summary>
    public int? SmtpPort { get; set; }

    /// <summary>APP_ERROR_SMTP_USER: authenticates when set.</summary>
    public string? SmtpUser { get; set; }

    /// <summary>APP_ERROR_SMTP_PASSWORD.</summary>
    public string? SmtpPassword { get; set; }

    /// <summary>APP_ERROR_SMTP_SECURITY: "none", "starttls" (default) or "tls".</summary>
    public string? SmtpSecurity { get; set; }

    /// <summary>APP_ERROR_WEBHOOK_URL: turns on the built-in webhook notifier (with SendNotification).</summary>
    public string? WebhookUrl { get; set; }

    /// <summary>APP_ERROR_BASE_URL: the app's public address, for links to detail pages in notifications.</summary>
    public string? BaseUrl { get; set; }

    /// <summary>A notifier of the app's own (the seed's NotificationMixin); notifiers registered as
    /// <see cref="INotifier"/> services are used too.</summary>
    public INotifier? Notifier { get; set; }

    /// <summary>Raises tickets (the seed's TicketingMixin); <see cref="ITicketing"/> services are used too.</summary>
    public ITicketing? Ticketing { get; set; }

    /// <summary>Where "now" comes from; default the <see cref="TimeProvider"/> service, else the system clock.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>Adds app context to each occurrence (the seed's context builder).</summary>
    public IContextBuilder? ContextBuilder { get; set; }

    /// <summary>A masking rule of the app's own; replaces the key rule. Credential headers stay masked.</summary>
    public IMaskingRule? MaskingRule { get; set; }

    /// <summary>A masking rule as a function; used when <see cref="MaskingRule"/> is null.</summary>
    public Func<string, MaskDecision>? Masking { get; set; }

    /// <summary>
    /// Groups occurrences by a key of the app's own: given the exception (null for messages) and the
    /// request (null outside one), return a key, or null for the default fingerprint.
    /// </summary>
    public Func<Exception?, HttpContext?, string?>? Fingerprint { get; set; }

    /// <summary>
    /// Who may browse and delete (the seed's view permission). Default: requests from the local machine only.
    /// </summary>
    public Func<HttpContext, bool>? ViewPermission { get; set; }
}
