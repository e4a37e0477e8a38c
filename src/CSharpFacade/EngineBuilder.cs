using ErrorMonitor.Web;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ErrorMonitor;

/// <summary>Adapts options and configuration to the shell's engine factory (which owns every rule).</summary>
internal static class EngineBuilder
{
    private const string Section = "ErrorMonitor";

    /// <summary>The APP_ERROR_* keys from the configuration root, then the ErrorMonitor section, then options.</summary>
    internal static Dictionary<string, string> Values(IConfiguration? configuration, ErrorMonitorOptions options)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var known = Core.Config.keys.ToArray();

        bool IsKnown(string key) =>
            known.Any(k => key.Equals(k, StringComparison.OrdinalIgnoreCase)
                || key.StartsWith(k + ":", StringComparison.OrdinalIgnoreCase));

        void Take(IEnumerable<KeyValuePair<string, string?>> pairs, string prefix)
        {
            foreach (var (key, value) in pairs)
            {
                if (value is null || !key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                var name = key[prefix.Length..];
                if (IsKnown(name))
                {
                    Set(values, name, value);
                }
            }
        }

        if (configuration is not null)
        {
            Take(configuration.AsEnumerable(), "");
            Take(configuration.GetSection(Section).AsEnumerable(), Section + ":");
        }

        Put(values, Core.Config.EnabledKey, options.Enabled);
        Put(values, Core.Config.SendNotificationKey, options.SendNotification);
        PutList(values, Core.Config.RecipientEmailKey, options.RecipientEmails);
        Put(values, Core.Config.SubjectPrefixKey, options.SubjectPrefix);
        Put(values, Core.Config.MaskWithKey, options.MaskWith);
        PutList(values, Core.Config.MaskedKeyHasKey, options.MaskedKeyHas);
        PutList(values, Core.Config.MaskedKeysKey, options.MaskedKeys);
        Put(values, Core.Config.UrlPrefixKey, options.UrlPrefix);
        Put(values, Core.Config.EmailSenderKey, options.EmailSender);
        Put(values, Core.Config.DefaultListSizeKey, options.DefaultListSize);
        Put(values, Core.Config.StoreKey, options.Store);
        Put(values, Core.Config.TableKey, options.TableName);
        Put(values, Core.Config.SmtpHostKey, options.SmtpHost);
        Put(values, Core.Config.SmtpPortKey, options.SmtpPort);
        Put(values, Core.Config.SmtpUserKey, options.SmtpUser);
        Put(values, Core.Config.SmtpPasswordKey, options.SmtpPassword);
        Put(values, Core.Config.SmtpSecurityKey, options.SmtpSecurity);
        Put(values, Core.Config.WebhookUrlKey, options.WebhookUrl);
        Put(values, Core.Config.BaseUrlKey, options.BaseUrl);
        return values;
    }

    // A key set plainly replaces any list form of it (KEY:0, KEY:1, ...), and the other way round.
    private static void Set(Dictionary<string, string> values, string key, string value)
    {
        var root = key.Split(':')[0];
        if (!key.Contains(':'))
        {
            foreach (var k in values.Keys.Where(k => k.StartsWith(root + ":", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                values.Remove(k);
            }
        }
        else
        {
            values.Remove(root);
        }

        values[key] = value;
    }

    private static void Put<T>(Dictionary<string, string> values, string key, T? value)
    {
        if (value is null)
        {
            return;
        }

        var text = value switch
        {
            bool b => b ? "true" : "false",
            _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
        };
        Set(values, key, text);
    }

    private static void PutList(Dictionary<string, string> values, string key, IList<string>? items)
    {
        if (items is null)
        {
            return;
        }

        if (items.Count == 0)
        {
            Set(values, key, "none");
            return;
        }

        Set(values, key + ":0", items[0]);
        for (var i = 1; i < items.Count; i++)
        {
            values[key + ":" + i] = items[i];
        }
    }

    /// <summary>Builds the engine; throws <see cref="ErrorMonitorConfigException"/> naming the key at fault.</summary>
    internal static Engine Build(
        IConfiguration? configuration,
        ErrorMonitorOptions options,
        string? contentRoot,
        ILogger? logger,
        IServiceProvider? services = null)
    {
        var values = Values(configuration, options);
        var connectionString = options.ConnectionString ?? configuration?.GetConnectionString(Section);

        Func<string, string?>? masking = null;
        if (options.MaskingRule is { } rule)
        {
            masking = key => rule.Decide(key).MaskText;
        }
        else if (options.Masking is { } function)
        {
            masking = key => function(key).MaskText;
        }

        Func<Exception?, HttpContext?, string?>? fingerprint = options.Fingerprint;

        var notifiers = new List<INotifier>();
        var ticketing = new List<ITicketing>();
        if (options.Notifier is { } notifier)
        {
            notifiers.Add(notifier);
        }

        if (options.Ticketing is { } tickets)
        {
            ticketing.Add(tickets);
        }

        if (services is not null)
        {
            notifiers.AddRange(services.GetServices<INotifier>());
            ticketing.AddRange(services.GetServices<ITicketing>());
        }

        var clock = options.TimeProvider ?? services?.GetService<TimeProvider>();

        return EngineFactory.create(new EngineSources
        {
            Values = values,
            ConnectionString = connectionString,
            ContentRoot = contentRoot,
            Masking = masking,
            Fingerprint = fingerprint,
            ContextBuilder = options.ContextBuilder,
            Store = options.ErrorStore,
            Notifiers = notifiers,
            Ticketing = ticketing,
            Clock = clock,
            Logger = logger,
            MeterFactory = services?.GetService<System.Diagnostics.Metrics.IMeterFactory>(),
            EnvironmentName = services?.GetService<Microsoft.Extensions.Hosting.IHostEnvironment>()?.EnvironmentName,
        });
    }
}
