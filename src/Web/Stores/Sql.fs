namespace ErrorMonitor.Web.Stores

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Npgsql
open NpgsqlTypes

/// The few helpers the PostgreSQL store needs: commands with named parameters, and readers to lists.
[<RequireQualifiedAccess>]
module internal Sql =

    /// A named parameter with its value and type.
    type Param = string * obj * NpgsqlDbType

    /// A text parameter.
    let text (name: string) (v: string) : Param = name, box v, NpgsqlDbType.Text

    /// A 64-bit integer parameter.
    let bigint (name: string) (v: int64) : Param = name, box v, NpgsqlDbType.Bigint

    /// A 32-bit integer parameter.
    let int (name: string) (v: int) : Param = name, box v, NpgsqlDbType.Integer

    /// A text array parameter.
    let textArray (name: string) (v: string array) : Param =
        name, box v, NpgsqlDbType.Array ||| NpgsqlDbType.Text

    /// A 64-bit integer array parameter.
    let bigintArray (name: string) (v: int64 array) : Param =
        name, box v, NpgsqlDbType.Array ||| NpgsqlDbType.Bigint

    /// A timestamptz array parameter (UTC).
    let timeArray (name: string) (v: DateTimeOffset array) : Param =
        name, box (v |> Array.map (fun t -> t.UtcDateTime)), NpgsqlDbType.Array ||| NpgsqlDbType.TimestampTz

    let private command (conn: NpgsqlConnection) (tx: NpgsqlTransaction) (sql: string) (ps: Param list) =
        let cmd = new NpgsqlCommand(sql, conn, tx)

        for name, value, t in ps do
            cmd.Parameters.Add(NpgsqlParameter(name, t, Value = value)) |> ignore

        cmd

    /// Runs a statement; returns the rows it affected.
    let execute
        (conn: NpgsqlConnection)
        (tx: NpgsqlTransaction)
        (sql: string)
        (ps: Param list)
        (ct: CancellationToken)
        =
        task {
            use cmd = command conn tx sql ps
            return! cmd.ExecuteNonQueryAsync ct
        }

    /// Runs a query and reads its rows with `read`.
    let query
        (conn: NpgsqlConnection)
        (tx: NpgsqlTransaction)
        (sql: string)
        (ps: Param list)
        (read: NpgsqlDataReader -> 'T)
        (ct: CancellationToken)
        : Task<List<'T>> =
        task {
            use cmd = command conn tx sql ps
            use! r = cmd.ExecuteReaderAsync ct
            return! Rows.readAll (fun row -> read (row :?> NpgsqlDataReader)) r ct
        }

    /// A timestamptz parameter.
    let time (name: string) (v: DateTimeOffset) : Param =
        name, box v.UtcDateTime, NpgsqlDbType.TimestampTz

    /// A timestamptz parameter that may be null.
    let nullableTimeParam (name: string) (v: Nullable<DateTimeOffset>) : Param =
        name,
        (if v.HasValue then
             box v.Value.UtcDateTime
         else
             box DBNull.Value),
        NpgsqlDbType.TimestampTz

    /// A UTC timestamp column that may be null.
    let readTime (r: NpgsqlDataReader) (i: int) : DateTimeOffset =
        DateTimeOffset(DateTime.SpecifyKind(r.GetDateTime i, DateTimeKind.Utc))

    /// A timestamptz column that may be null.
    let nullableTime (r: NpgsqlDataReader) (i: int) : Nullable<DateTimeOffset> =
        if r.IsDBNull i then
            Nullable()
        else
            Nullable(DateTimeOffset(DateTime.SpecifyKind(r.GetDateTime i, DateTimeKind.Utc)))

    /// A UTC timestamp column as a DateTimeOffset.
    let timeAt (r: NpgsqlDataReader) (i: int) : DateTimeOffset =
        DateTimeOffset(DateTime.SpecifyKind(r.GetDateTime i, DateTimeKind.Utc))
