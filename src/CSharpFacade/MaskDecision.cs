namespace ErrorMonitor;

/// <summary>What a masking rule decides for one key: keep the value, or replace it with a text.</summary>
public readonly record struct MaskDecision
{
    private MaskDecision(string? maskWith) => MaskText = maskWith;

    /// <summary>The replacement text, or null when the value is kept.</summary>
    public string? MaskText { get; }

    /// <summary>True when the value is replaced.</summary>
    public bool IsMasked => MaskText is not null;

    /// <summary>Keep the value as it is.</summary>
    public static MaskDecision Keep => default;

    /// <summary>Replace the value with <paramref name="text"/>.</summary>
    /// <param name="text">The replacement text.</param>
    public static MaskDecision MaskWith(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new MaskDecision(text);
    }
}

/// <summary>A masking rule (the seed's MaskingMixin): decides, by key, whether a value is masked.</summary>
public interface IMaskingRule
{
    /// <summary>Decides for one key (a header, query, form, cookie, route, JSON or data key).</summary>
    /// <param name="key">The key, as the request or the app named it.</param>
    MaskDecision Decide(string key);
}
