"""A board game whose class attributes are computed from module constants when the class
body runs."""

from executors import executor

BOARD_SIZE = 8
PIECES = ("pawn", "knight", "bishop", "rook", "queen", "king")
VALUES = (1, 3, 3, 5, 9, 0)


class Board:
    SIZE = BOARD_SIZE
    CELLS = BOARD_SIZE * BOARD_SIZE
    WORTH = dict(zip(PIECES, VALUES))
    CORNERS = ((0, 0), (0, BOARD_SIZE - 1), (BOARD_SIZE - 1, 0), (BOARD_SIZE - 1, BOARD_SIZE - 1))

    def material(self, pieces):
        return sum(self.WORTH[piece] for piece in pieces)


def score(pieces):
    return [Board.CELLS, Board().material(pieces), len(Board.CORNERS)]


def main():
    with executor() as ex:
        print(ex.submit(score, ["queen", "rook", "pawn", "pawn"]).result())
        print(ex.submit(score, []).result())


if __name__ == "__main__":
    main()
