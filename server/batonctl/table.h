/*
 * Aligned text tables for batonctl's default output:
 *
 *   ID  NAME   REGION  CAPACITY  ON_TIME
 *    1  acme   EU-DE         10    0.950
 *   12  zeta   IN            40        -
 *
 * Column widths are computed from the cells (counted in UTF-8 characters), two
 * spaces separate columns, numeric columns are right-aligned, an absent value is
 * "-", and nothing trails the last column. Control characters from the broker are
 * shown as '?' so a hostile name cannot break the layout or drive the terminal.
 * Pure: renders into a string.
 */
#ifndef BT_CLI_TABLE_H
#define BT_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  const char *header;
  bool right; /* right-align (numbers) */
} bt_cli_col_t;

typedef struct {
  const bt_cli_col_t *cols; /* borrowed */
  size_t n_cols;
  bool show_header; /* false for key/value views */
  char **cells;     /* owned, row-major */
  size_t n_cells;
  size_t cap;
} bt_cli_table_t;

/* Borrows cols for the table's lifetime. */
void bt_cli_table_init(bt_cli_table_t *t, const bt_cli_col_t *cols,
                       size_t n_cols, bool show_header);
void bt_cli_table_close(bt_cli_table_t *t);

/* Appends the next cell (rows fill left to right). NULL or "" shows as "-". */
void bt_cli_table_cell(bt_cli_table_t *t, const char *s);
void bt_cli_table_cellf(bt_cli_table_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

size_t bt_cli_table_rows(const bt_cli_table_t *t);

/* Renders the table, one line per row plus the header, each ending in '\n'.
 * Returns an owned string (free()). A partly filled last row is padded with "-". */
char *bt_cli_table_render(const bt_cli_table_t *t);

#endif
