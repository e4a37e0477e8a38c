using ErrorMonitor.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ErrorMonitor;

/// <summary>
/// The monitor of one app. Register it with <c>builder.Services.AddErrorMonitor()</c> and take it from
/// dependency injection, or create it the seed's way: <c>new AppErrorMonitor(app)</c>, or
/// <c>new AppErrorMonitor()</c> followed by <see cref="InitApp"/> ("configure at the end").
/// Recording never throws into the app: ErrorMonitor's own failures are logged, and what is recorded before the
/// monitor is initialised is dropped (the record methods return null).
/// </summary>
public sealed class AppErrorMonitor
{
    private readonly object _gate = new();
    private Engine? _engine;
    private IHttpContextAccessor? _accessor;

    /// <summary>A monitor to be initialised later with <see cref="InitApp"/>.</summary>
    public AppErrorMonitor()
    {
    }

    /// <summary>A monitor of <paramref name="app"/>: captures its unhandled exceptions and serves its pages.</summary>
    /// <param name="app">The built app.</param>
    /// <param name="store">A store of the app's own; default from APP_ERROR_STORE.</param>
    /// <param name="notifier">A notifier of the app's own (with APP_ERROR_SEND_NOTIFICATION).</param>
    /// <param name="ticketing">Raises tickets, once a group.</param>
    /// <param name="contextBuilder">Adds app context to each occurrence.</param>
    /// <param name="masking">A masking rule of the app's own; default from APP_ERROR_MASKED_KEY_HAS.</param>
    /// <param name="configure">Options in code; they win over configuration keys.</param>
    public AppErrorMonitor(
        WebApplication app,
        IErrorStore? store = null,
        INotifier? notifier = null,
        ITicketing? ticketing = null,
        IContextBuilder? contextBuilder = null,
        IMaskingRule? masking = null,
        Action<ErrorMonitorOptions>? configure = null)
    {
        InitApp(app, store, notifier, ticketing, contextBuilder, masking, configure);
    }

    internal AppErrorMonitor(Engine engine, IHttpContextAccessor? accessor)
    {
        _engine = engine;
        _accessor = accessor;
    }

    /// <summary>True once the monitor is initialised.</summary>
    public bool IsInitialized => _engine is not null;

    /// <summary>The store the monitor writes to.</summary>
    public IErrorStore Store => Engine.Store;

    internal Engine Engine =>
        _engine ?? throw new ErrorMonitorConfigException(
            "This AppErrorMonitor is not initialised: call InitApp(app) or register it with AddErrorMonitor().");

    /// <summary>
    /// Initialises the monitor for <paramref name="app"/> (the seed's init_app): reads configuration, adds the
    /// capture middleware and the pages, and starts the background writer with the app's lifetime.
    /// </summary>
    /// <param name="app">The built app.</param>
    /// <param name="store">A store of the app's own; default from APP_ERROR_STORE.</param>
    /// <param name="notifier">A notifier of the app's own (with APP_ERROR_SEND_NOTIFICATION).</param>
    /// <param name="ticketing">Raises tickets, once a group.</param>
    /// <param name="contextBuilder">Adds app context to each occurrence.</param>
    /// <param name="masking">A masking rule of the app's own; default from APP_ERROR_MASKED_KEY_HAS.</param>
    /// <param name="configure">Options in code; they win over configuration keys.</param>
    /// <exception cref="ErrorMonitorConfigException">No app, initialised twice, a bad configuration, or a table of
    /// the configured name that is not ErrorMonitor's.</exception>
    public void InitApp(
        WebApplication app,
        IErrorStore? store = null,
        INotifier? notifier = null,
        ITicketing? ticketing = null,
        IContextBuilder? contextBuilder = null,
        IMaskingRule? masking = null,
        Action<ErrorMonitorOptions>? configure = null)
    {
        if (app is null)
        {
            throw new ErrorMonitorConfigException("AppErrorMonitor needs the app: pass the WebApplication to InitApp.");
        }

        lock (_gate)
        {
            if (_engine is not null)
            {
                throw new ErrorMonitorConfigException("This AppErrorMonitor is initialised already: InitApp may be called once.");
            }

            var options = new ErrorMonitorOptions
            {
                ErrorStore = store,
                Notifier = notifier,
                Ticketing = ticketing,
                ContextBuilder = contextBuilder,
                MaskingRule = masking,
            };
            configure?.Invoke(options);
            var logger = app.Services.GetService<ILoggerFactory>()?.CreateLogger(ErrorMonitor.Core.LogCapture.OwnCategory);
            var engine = EngineBuilder.Build(app.Configuration, options, app.Environment.ContentRootPath, logger, app.Services);

            if (app.Services.GetService<Microsoft.AspNetCore.Antiforgery.IAntiforgery>() is null && logger is not null)
            {
                FacadeLog.NoAntiforgery(logger);
            }

            _accessor = app.Services.GetService<IHttpContextAccessor>();
            Middleware.useIn(app, engine);
            ErrorMonitorEndpoints.Map(app, engine, options);
            engine.CheckStoreAsync(CancellationToken.None).GetAwaiter().GetResult();
            engine.Start();

            // The logging integration, added to the app's logging (its filter rules apply: the built app's
            // logging cannot take a rule of ErrorMonitor's own, as AddErrorMonitor gives it).
            app.Services.GetService<ILoggerFactory>()?.AddProvider(new MonitorLoggerProvider(() => engine, _accessor));
            app.Lifetime.ApplicationStopping.Register(
                () => engine.StopAsync(engine.Settings.ShutdownTimeout).GetAwaiter().GetResult());
            _engine = engine;
        }
    }

    private HttpContext? Current(HttpContext? context) => context ?? _accessor?.HttpContext;

    /// <summary>Records an exception (the seed's record_exception). Returns its group's hash, or null when
    /// capture is off or failed, or the monitor is not initialised.</summary>
    /// <param name="exception">The exception.</param>
    /// <param name="context">The request it happened in; default the current request, if any.</param>
#pragma warning disable RS0026 // With and without a message, as the seed has record_exception and capture_message.
    public string? RecordException(Exception exception, HttpContext? context = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(exception);
        var result = _engine?.Record(exception, Current(context));
        return result?.Value.Item1;
    }

    /// <summary>Records an exception with a message about it as context (the seed's <c>capture_message</c>
    /// inside an <c>except</c>, which records the exception being handled). The message is kept as the extra
    /// <c>message</c>; the group is the exception's. Returns its group's hash, or null when capture is off or the
    /// monitor is not initialised.</summary>
    /// <param name="exception">The exception being handled.</param>
    /// <param name="message">What the app says about it.</param>
    /// <param name="context">The request it happened in; default the current request, if any.</param>
#pragma warning disable RS0026 // An overload with a message, as the seed's capture_message has it.
    public string? RecordException(Exception exception, string message, HttpContext? context = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(message);
        using var scope = ErrorScope.Begin();
        scope.SetExtra("message", message);
        return RecordException(exception, context);
    }

    /// <summary>Records an exception and completes once its occurrence is stored.</summary>
    /// <param name="exception">The exception.</param>
    /// <param name="context">The request it happened in; default the current request, if any.</param>
    /// <param name="cancellationToken">Stops waiting (the occurrence is still written).</param>
    public async Task<string?> RecordExceptionAsync(
        Exception exception,
        HttpContext? context = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var result = _engine?.Record(exception, Current(context));
        if (result is null)
        {
            return null;
        }

        await _engine!.WaitStoredAsync(result.Value.Item2, cancellationToken).ConfigureAwait(false);
        return result.Value.Item1;
    }

    /// <summary>Records a message (no exception). Returns its group's hash, or null when capture is off or the
    /// monitor is not initialised.</summary>
    /// <param name="message">The text; digits, GUIDs and hex runs do not split its group.</param>
    /// <param name="context">The request it belongs to; default the current request, if any.</param>
    public string? CaptureMessage(string message, HttpContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(message);
        var result = _engine?.RecordMessage(message, Current(context));
        return result?.Value.Item1;
    }

    /// <summary>Runs <paramref name="action"/>, recording what it throws (the seed's track_exception).</summary>
    /// <param name="action">The work.</param>
    /// <param name="silent">True: record and swallow the exception; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape (Action/Func<T>, Func<Task>/Func<Task<T>>), as Task.Run has them.
    public void Track(Action action, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        Track<object?>(() =>
        {
            action();
            return null;
        }, silent);
    }

    /// <summary>Runs <paramref name="action"/>, recording what it throws.</summary>
    /// <param name="action">The work.</param>
    /// <param name="silent">True: record, swallow and return the default value; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape (Action/Func<T>, Func<Task>/Func<Task<T>>), as Task.Run has them.
    public T? Track<T>(Func<T> action, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        try
        {
            return action();
        }
        catch (Exception ex)
        {
            RecordException(ex);
            if (!silent)
            {
                throw;
            }

            return default;
        }
    }

    /// <summary>Runs <paramref name="action"/>, recording what it throws.</summary>
    /// <param name="action">The work.</param>
    /// <param name="silent">True: record and swallow the exception; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape (Action/Func<T>, Func<Task>/Func<Task<T>>), as Task.Run has them.
    public Task TrackAsync(Func<Task> action, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        return TrackAsync<object?>(async () =>
        {
            await action().ConfigureAwait(false);
            return null;
        }, silent);
    }

    /// <summary>Runs <paramref name="action"/>, recording what it throws.</summary>
    /// <param name="action">The work.</param>
    /// <param name="silent">True: record, swallow and return the default value; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape (Action/Func<T>, Func<Task>/Func<Task<T>>), as Task.Run has them.
    public async Task<T?> TrackAsync<T>(Func<Task<T>> action, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            RecordException(ex);
            if (!silent)
            {
                throw;
            }

            return default;
        }
    }

    /// <summary>Runs <paramref name="action"/> inside a new scope that <paramref name="scope"/> fills (extras
    /// recorded with whatever is thrown inside it), recording what it throws: the seed's capturing scope.</summary>
    /// <param name="action">The work.</param>
    /// <param name="scope">Sets the scope's extras before the work runs.</param>
    /// <param name="silent">True: record and swallow the exception; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape, as above.
    public void Track(Action action, Action<ErrorScope> scope, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        ArgumentNullException.ThrowIfNull(scope);
        using var s = ErrorScope.Begin();
        scope(s);
        Track(action, silent);
    }

    /// <summary>Runs <paramref name="action"/> inside a new scope that <paramref name="scope"/> fills, recording
    /// what it throws.</summary>
    /// <param name="action">The work.</param>
    /// <param name="scope">Sets the scope's extras before the work runs.</param>
    /// <param name="silent">True: record, swallow and return the default value; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape, as above.
    public T? Track<T>(Func<T> action, Action<ErrorScope> scope, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        ArgumentNullException.ThrowIfNull(scope);
        using var s = ErrorScope.Begin();
        scope(s);
        return Track(action, silent);
    }

    /// <summary>Runs <paramref name="action"/> inside a new scope that <paramref name="scope"/> fills, recording
    /// what it throws.</summary>
    /// <param name="action">The work.</param>
    /// <param name="scope">Sets the scope's extras before the work runs.</param>
    /// <param name="silent">True: record and swallow the exception; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape, as above.
    public async Task TrackAsync(Func<Task> action, Action<ErrorScope> scope, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        ArgumentNullException.ThrowIfNull(scope);
        using var s = ErrorScope.Begin();
        scope(s);
        await TrackAsync(action, silent).ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="action"/> inside a new scope that <paramref name="scope"/> fills, recording
    /// what it throws.</summary>
    /// <param name="action">The work.</param>
    /// <param name="scope">Sets the scope's extras before the work runs.</param>
    /// <param name="silent">True: record, swallow and return the default value; false: record and rethrow.</param>
#pragma warning disable RS0026 // Overloads by delegate shape, as above.
    public async Task<T?> TrackAsync<T>(Func<Task<T>> action, Action<ErrorScope> scope, bool silent = false)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(action);
        ArgumentNullException.ThrowIfNull(scope);
        using var s = ErrorScope.Begin();
        scope(s);
        return await TrackAsync(action, silent).ConfigureAwait(false);
    }

    /// <summary>Opens a scope whose extras are added to whatever is recorded inside it (on this async flow).</summary>
    public ErrorScope BeginScope() => ErrorScope.Begin();

    /// <summary>Completes once everything recorded so far is stored.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    public Task FlushAsync(CancellationToken cancellationToken = default) =>
        _engine?.FlushAsync(cancellationToken) ?? Task.CompletedTask;
}
