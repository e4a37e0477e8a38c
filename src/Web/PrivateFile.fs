namespace ErrorMonitor.Web

open System

/// Files ErrorMonitor creates (the SQLite database, the spill file) hold masked but private data: they are
/// created readable and writable by their owner only (0600; SQLite gives its -wal file the same mode).
[<RequireQualifiedAccess>]
module internal PrivateFile =

    /// Owner read and write.
    let mode = IO.UnixFileMode.UserRead ||| IO.UnixFileMode.UserWrite

    let private options (fileMode: IO.FileMode) =
        let o = IO.FileStreamOptions(Mode = fileMode, Access = IO.FileAccess.Write)

        if not (OperatingSystem.IsWindows()) then
            o.UnixCreateMode <- Nullable mode

        o

    /// Creates `path` (empty, owner-only) when it does not exist yet; an existing file is left as it is.
    let ensure (path: string) =
        if not (IO.File.Exists path) then
            IO.Directory.CreateDirectory(IO.Path.GetDirectoryName(IO.Path.GetFullPath path))
            |> ignore

            try
                use _ = new IO.FileStream(path, options IO.FileMode.CreateNew)
                ()
            with :? IO.IOException when IO.File.Exists path ->
                () // created meanwhile by another instance

    /// Writes `text` into `path`, created owner-only when it is new.
    let writeAllText (path: string) (text: string) =
        use stream = new IO.FileStream(path, options IO.FileMode.Create)
        use writer = new IO.StreamWriter(stream)
        writer.Write text

    /// Opens `path` for appending (created owner-only when it is new).
    let openAppend (path: string) : IO.FileStream =
        let o = options IO.FileMode.Append
        o.Share <- IO.FileShare.Read
        new IO.FileStream(path, o)
